-- Ledger schema, version 7 (PostgreSQL): account layouts (sub-accounts 子账户, buffered
-- posting 缓冲记账). kind 0 plain, 1 sub-accounts,
-- 2 buffered, 3 a row of account layout_owner; rows = the layout's row count, or the row's number.
ALTER TABLE accounts ADD COLUMN layout_kind smallint NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN layout_rows smallint NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN layout_owner bytea;
-- Layout accounts and their rows: few, read at start-up and by the buffer scan.
CREATE INDEX accounts_with_layout ON accounts (layout_kind) WHERE layout_kind <> 0;
