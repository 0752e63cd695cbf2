-- Schema version 9: reconciliation reads a day's orders of every tenant by creation time.
CREATE INDEX IF NOT EXISTS orders_by_created ON orders (created_at_ms, id);
