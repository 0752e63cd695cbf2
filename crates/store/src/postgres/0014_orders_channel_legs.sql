-- Schema version 14: an order's request at a channel, kept beside the order so that
-- reconciliation reads a channel's day from these columns instead of decoding every order
-- of the day. `channel_at_version` is the order version they were computed at: a row written
-- before this migration (or by a release that does not know the columns, during a rolling
-- upgrade) has another version, and its readers fall back to the order itself. Adding
-- columns with a constant default rewrites no row.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS channel TEXT;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS channel_status TEXT;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS channel_ref TEXT;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS channel_fee_minor BIGINT;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS channel_at_version BIGINT NOT NULL DEFAULT -1;
