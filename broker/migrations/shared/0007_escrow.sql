-- The broker's watch over each contract's escrow: when it warned, when it suspended.
CREATE TABLE contract_escrow (
    contract_id TEXT PRIMARY KEY,
    warned_at BIGINT,
    suspended_at BIGINT
);
