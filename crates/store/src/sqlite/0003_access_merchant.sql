-- Access schema, version 3 (SQLite): keys bound to one merchant.
ALTER TABLE api_keys ADD COLUMN merchant TEXT;
