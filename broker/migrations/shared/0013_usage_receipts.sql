-- What consumers signed they saw of each channel session: the latest receipt per session,
-- evidence a disputed record is checked against.
CREATE TABLE usage_receipts (
    contract_id TEXT NOT NULL,
    session TEXT NOT NULL,
    consumer TEXT NOT NULL,
    at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (contract_id, session)
);
ALTER TABLE usage_records ADD COLUMN dispute_evidence TEXT;
-- The channel session a record measured: one record per session, so a copy with a fresh id
-- cannot charge a session twice.
ALTER TABLE usage_records ADD COLUMN session TEXT;
CREATE UNIQUE INDEX usage_session ON usage_records (contract_id, session);
