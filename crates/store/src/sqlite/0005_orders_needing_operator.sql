-- Schema version 5 (SQLite, orders.db): final orders an operator must act on (suspended
-- top-ups, disputed withdrawals and card refunds), found without reading every order.
CREATE INDEX orders_needing_operator ON orders (updated_at_ms, id)
    WHERE status IN ('suspended', 'disputed');
