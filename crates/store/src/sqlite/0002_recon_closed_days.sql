-- Schema version 2 (SQLite, recon.db): closed business days (日切). A closed day is never
-- changed: its row is written once, with the day's trial balance as JSON and its hash.
CREATE TABLE recon_closed_days (
    business_day INTEGER PRIMARY KEY,
    hash         TEXT    NOT NULL,
    body         TEXT    NOT NULL
);
