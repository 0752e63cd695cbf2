-- Operators' work: the hash-chained audit log and money-moving operator actions.
CREATE TABLE ops_audit (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL
);

CREATE TABLE ops_actions (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX ops_actions_by_state ON ops_actions (state, created_at_ms);
