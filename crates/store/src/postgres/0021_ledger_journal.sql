-- The journal-first engine on PostgreSQL (`--ledger-engine journal`): one node holds the
-- book by a lease and appends each batch's bytes here; the books are written behind.
CREATE TABLE ledger_journal_lease (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    -- Raised by every takeover: an append names the token it holds, so a node that lost
    -- the lease cannot append after another took it.
    token BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE ledger_journal (
    batch_seq BIGINT PRIMARY KEY,
    version SMALLINT NOT NULL,
    payload BYTEA NOT NULL
);

-- A direct writer (`--ledger-engine direct`) calls this in the statement that moves the
-- head. It refuses while a node runs the book on the journal, and while the journal holds
-- batches the books lack (a journal node crashed): writing then would fork the chain.
CREATE FUNCTION ledger_direct_write_allowed() RETURNS boolean LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM ledger_journal_lease WHERE expires_at > now()) THEN
        RAISE EXCEPTION 'a node runs these books on the journal-first engine (it holds the journal lease): start this node with --ledger-engine journal'
            USING ERRCODE = 'QB001';
    END IF;
    IF EXISTS (SELECT 1 FROM ledger_journal j JOIN journal_head h ON h.id = 1 WHERE j.batch_seq > h.batch_seq) THEN
        RAISE EXCEPTION 'the journal holds batches the books lack: restart this node (it writes them into the books first) or start one with --ledger-engine journal'
            USING ERRCODE = 'QB002';
    END IF;
    RETURN true;
END
$$;
