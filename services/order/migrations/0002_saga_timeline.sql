-- A cancellation asked for while the saga ran; cleared when it settles.
ALTER TABLE orders ADD COLUMN cancellation_requested BOOLEAN NOT NULL DEFAULT false;

-- ListStuckSagas scans the orders whose saga still runs.
CREATE INDEX orders_running ON orders (status) WHERE status IN ('PROCESSING', 'PENDING');

-- Every event of every order's saga, from every service, written only by
-- the `order-timeline-<stream>` projections (one per source stream). The
-- order id is the saga's correlation id.
CREATE TABLE saga_events (
    event_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    service TEXT NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at_ms BIGINT NOT NULL,
    summary TEXT NOT NULL
);

-- ViewOrderTimeline: one saga, oldest first (UUIDv7 event ids break ties
-- in time order).
CREATE INDEX saga_events_by_order ON saga_events (order_id, occurred_at_ms, event_id);
