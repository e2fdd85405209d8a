-- What a contract's accepted records claim together, so that records (overlapping or not) never
-- add up to more than the plan allows over the contract's life.
CREATE TABLE usage_totals (
    contract_id TEXT PRIMARY KEY,
    connection_ms BIGINT NOT NULL DEFAULT 0,
    cpu_ms BIGINT NOT NULL DEFAULT 0,
    gpu_ms BIGINT NOT NULL DEFAULT 0,
    bytes_in BIGINT NOT NULL DEFAULT 0,
    bytes_out BIGINT NOT NULL DEFAULT 0
);
