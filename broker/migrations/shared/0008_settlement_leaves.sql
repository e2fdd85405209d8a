-- Each batch keeps its leaves (per contract, in leaf order: record id, record hash, amount), so a
-- record's proof survives its contract being skipped on chain and its records batched again;
-- charges are released to the provider after the contracts' challenge window.
ALTER TABLE settlement_batches ADD COLUMN leaves TEXT;
ALTER TABLE settlement_batches ADD COLUMN releasable_at BIGINT;
ALTER TABLE settlement_batches ADD COLUMN released_at BIGINT;
-- A contract's waiting records, oldest first, without scanning everyone's.
CREATE INDEX usage_contract_pending ON usage_records (contract_id, batch_id, received_at);
