-- Schema version 17: final orders an operator must act on (suspended top-ups, disputed
-- withdrawals and card refunds), found without reading every order.
CREATE INDEX IF NOT EXISTS orders_needing_operator ON orders (updated_at_ms, id)
    WHERE status IN ('suspended', 'disputed');
