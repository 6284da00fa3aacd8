-- The orders read model, written only by the `order-orders` projection.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status TEXT NOT NULL,
    items_price_cents BIGINT NOT NULL DEFAULT 0 CHECK (items_price_cents >= 0),
    shipping_fee_cents BIGINT NOT NULL DEFAULT 0 CHECK (shipping_fee_cents >= 0),
    total_cents BIGINT NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
    reservation_id TEXT NOT NULL DEFAULT '',
    shipment_id TEXT NOT NULL DEFAULT '',
    transaction_id TEXT NOT NULL DEFAULT '',
    -- Set only when REJECTED: the RejectionReason name without its prefix.
    rejection_reason TEXT,
    rejection_detail TEXT NOT NULL DEFAULT '',
    rejection_product_ids TEXT[] NOT NULL DEFAULT '{}',
    cancellation_reason TEXT NOT NULL DEFAULT '',
    -- The status history, oldest first: statuses and their times, pairwise.
    history_statuses TEXT[] NOT NULL,
    history_at_ms BIGINT[] NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- ViewOrders: one customer's orders, newest first (UUIDv7 ids are time-ordered).
CREATE INDEX orders_by_customer ON orders (customer_id, id DESC);

-- One row per product line of an order.
CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL DEFAULT 0 CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, product_id)
);
