-- Schema version 2 (SQLite, orders.db): reconciliation reads a day's orders of every tenant
-- by creation time.
CREATE INDEX orders_by_created ON orders (created_at_ms, id);
