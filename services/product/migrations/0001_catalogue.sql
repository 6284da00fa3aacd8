-- The catalogue read model, written only by the `catalogue` projection.
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    price_cents BIGINT NOT NULL CHECK (price_cents >= 0),
    deleted BOOLEAN NOT NULL DEFAULT false,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- Live products in id order (UUIDv7 ids are time-ordered: oldest first).
CREATE INDEX products_live ON products (id) WHERE NOT deleted;
