-- Usage records the providers' agents report, priced when accepted, settled in batches.
CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    consumer TEXT NOT NULL,
    from_ts BIGINT NOT NULL,
    to_ts BIGINT NOT NULL,
    -- The signed record as the agent sent it; its keccak-256 is the Merkle leaf's record hash.
    body TEXT NOT NULL,
    record_hash TEXT NOT NULL,
    -- Bytes in + out, for the plan's free traffic allowance.
    traffic BIGINT NOT NULL DEFAULT 0,
    amount TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    batch_id TEXT,
    disputed_at BIGINT,
    dispute_reason TEXT,
    -- 'upheld' (the record stands) or 'voided' (charged nothing), by an operator.
    dispute_outcome TEXT
);
CREATE INDEX usage_pending ON usage_records (batch_id, received_at);
CREATE INDEX usage_contract ON usage_records (contract_id);

-- Settlement batches: built (records assigned, not yet confirmed on chain), then settled.
CREATE TABLE settlement_batches (
    id TEXT PRIMARY KEY,
    root TEXT NOT NULL,
    records_cid TEXT NOT NULL,
    record_count BIGINT NOT NULL,
    total TEXT NOT NULL,
    -- JSON: [[contractId, amount], ...] as sent on chain.
    charges TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('built', 'settled')),
    tx_hash TEXT,
    created_at BIGINT NOT NULL,
    settled_at BIGINT
);
