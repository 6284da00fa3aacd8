-- The shipments read model, written only by the `shipments` projection.

-- One row per allocated shipment (a failed allocation has no shipment).
CREATE TABLE shipments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('allocated', 'released', 'dispatched')),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    dispatched_at_ms BIGINT NOT NULL DEFAULT 0
);

-- Newest first (UUIDv7 ids are time-ordered), overall and per customer.
CREATE INDEX shipments_newest ON shipments (id DESC);
CREATE INDEX shipments_by_customer ON shipments (customer_id, id DESC);

-- The manifest: what a shipment carries, in the order's line order.
CREATE TABLE shipment_items (
    shipment_id TEXT NOT NULL REFERENCES shipments (id),
    position INT NOT NULL,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, position)
);
