-- The ledger index: every event the six contracts logged, from the deployment block on, keyed by
-- its place on chain (two broker processes never write one twice). The typed columns are what
-- auditors filter on; `topics` and `data` keep the raw log so anyone can decode it again.
CREATE TABLE ledger_events (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    contract_id TEXT,
    batch_id TEXT,
    account TEXT,
    counterparty TEXT,
    amount TEXT,
    fee TEXT,
    event_key TEXT,
    content TEXT,
    topics TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX ledger_events_contract ON ledger_events (contract_id, block_number, log_index);
CREATE INDEX ledger_events_account ON ledger_events (account, block_number);
CREATE INDEX ledger_events_counterparty ON ledger_events (counterparty, block_number);
CREATE INDEX ledger_events_name ON ledger_events (name, at);
CREATE INDEX ledger_events_batch ON ledger_events (batch_id);

-- The hash of every block the index read events from, and of the last block of each range: a
-- stored hash the chain no longer has is a reorganisation, and the highest one it still has is
-- the common ancestor to roll back to.
CREATE TABLE ledger_blocks (
    number BIGINT PRIMARY KEY,
    hash TEXT NOT NULL
);

-- Every reorganisation the index saw: where it rolled back to and how deep it was.
CREATE TABLE ledger_reorgs (
    detected_at BIGINT NOT NULL,
    from_block BIGINT NOT NULL,
    ancestor BIGINT NOT NULL,
    depth BIGINT NOT NULL,
    beyond_confirmations BIGINT NOT NULL CHECK (beyond_confirmations IN (0, 1))
);

-- The index replaces the Marketplace-only follower: statements and the escrow watch read
-- ledger_events.
DROP TABLE chain_moves;
DELETE FROM chain_cursor WHERE name = 'marketplace';
