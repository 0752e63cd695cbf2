-- Schema version 16: the stored form an order's body was written in
-- (`payments::order::STORED_FORM_VERSION`). Every body before this column is form 1, and so is
-- every body a release without the column writes (a rolling upgrade). A constant default
-- rewrites no row.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS body_version BIGINT NOT NULL DEFAULT 1;
