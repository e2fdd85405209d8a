-- Every movement of credits the Marketplace logged (deposits, top-ups, periods, usage charges,
-- unused shares, overcharges given back, refunds), fed from the chain's events; statements read it.
CREATE TABLE chain_moves (
    block_number BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    batch_id TEXT,
    amount TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX chain_moves_contract ON chain_moves (contract_id, block_number, log_index);

-- How far the follower has read: the next block, and the hash of the last one read (a different
-- hash there means the chain went back).
CREATE TABLE chain_cursor (
    name TEXT PRIMARY KEY,
    next_block BIGINT NOT NULL,
    last_hash TEXT
);
