-- The ledger read model, written only by the `ledger` projection.

-- One row per customer's balance.
CREATE TABLE balances (
    customer_id TEXT PRIMARY KEY,
    balance_cents BIGINT NOT NULL CHECK (balance_cents >= 0),
    closed BOOLEAN NOT NULL DEFAULT false,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- One row per movement of money: payments and top-ups. A refund is the
-- reversal of a payment, shown on the payment's row.
CREATE TABLE transactions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('payment', 'credit')),
    customer_id TEXT NOT NULL,
    order_id TEXT NOT NULL DEFAULT '',
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    processed_at_ms BIGINT NOT NULL,
    reversed_at_ms BIGINT NOT NULL DEFAULT 0
);

-- A customer's transactions, newest first (UUIDv7 ids are time-ordered).
CREATE INDEX transactions_by_customer ON transactions (customer_id, id DESC);
