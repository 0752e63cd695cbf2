-- Schema version 11 (PostgreSQL): closed business days (日切). A closed day is never
-- changed: its row is written once, with the day's trial balance as JSON and its hash.
CREATE TABLE recon_closed_days (
    business_day BIGINT PRIMARY KEY,
    hash         TEXT   NOT NULL,
    body         TEXT   NOT NULL
);
