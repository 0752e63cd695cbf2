-- Schema version 3 (SQLite, orders.db): an order's request at a channel, kept beside the
-- order so that reconciliation reads a channel's day from these columns instead of decoding
-- every order of the day. `channel_at_version` is the order version they were computed at:
-- a row written before this version (or by a release that does not know the columns) has
-- another version, and its readers fall back to the order itself.
ALTER TABLE orders ADD COLUMN channel TEXT;
ALTER TABLE orders ADD COLUMN channel_status TEXT;
ALTER TABLE orders ADD COLUMN channel_ref TEXT;
ALTER TABLE orders ADD COLUMN channel_fee_minor INTEGER;
ALTER TABLE orders ADD COLUMN channel_at_version INTEGER NOT NULL DEFAULT -1;
