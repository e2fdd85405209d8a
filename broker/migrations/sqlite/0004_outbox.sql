-- The transactional outbox every state change goes through.
-- Written in the same transaction as the change it reports; relayed to the bus afterwards.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- Who may see the event: a comma-separated list of dids, or '*' for everyone.
    audience TEXT NOT NULL,
    payload TEXT NOT NULL,
    at BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (published_at, seq);
