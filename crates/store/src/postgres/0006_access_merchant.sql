-- Schema version 6 (PostgreSQL): API keys bound to one merchant.
ALTER TABLE api_keys ADD COLUMN merchant TEXT;
