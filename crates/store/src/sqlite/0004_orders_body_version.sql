-- Schema version 4 (SQLite, orders.db): the stored form an order's body was written in
-- (`payments::order::STORED_FORM_VERSION`). Every body before this column is form 1, and so is
-- every body a release without the column writes.
ALTER TABLE orders ADD COLUMN body_version INTEGER NOT NULL DEFAULT 1;
