-- The ledger index, leaner for bulk writes (it is derived data: dropped here and read again
-- from the chain at the next start). Hashes and the raw log are kept as bytes, not hex; no
-- query looks events up by batch or by key; most events (charges) name no account, so the
-- participant indexes keep only the rows that do (`account = $1` implies NOT NULL, so both
-- databases use them). `BYTEA` is PostgreSQL's bytes; SQLite keeps the blobs bound to it as
-- blobs (a type name it does not know gives no conversion of blobs).
DROP TABLE ledger_events;
DELETE FROM ledger_blocks;
DELETE FROM chain_cursor WHERE name = 'ledger';
CREATE TABLE ledger_events (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    block_hash BYTEA NOT NULL,
    tx_hash BYTEA NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    contract_id TEXT,
    batch_id TEXT,
    account TEXT,
    counterparty TEXT,
    amount TEXT,
    fee TEXT,
    content TEXT,
    -- The log's topics, 32 bytes each, and its data: anyone can decode the event again.
    topics BYTEA NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ledger_events_contract ON ledger_events (contract_id, block_number, log_index);
CREATE INDEX ledger_events_account ON ledger_events (account, block_number) WHERE account IS NOT NULL;
CREATE INDEX ledger_events_counterparty ON ledger_events (counterparty, block_number) WHERE counterparty IS NOT NULL;
CREATE INDEX ledger_events_name ON ledger_events (name, at);
