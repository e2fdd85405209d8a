-- An operator's revocation holds a contract's credentials until an operator lifts it: nothing
-- re-issues one meanwhile (not the keeper, not a consumer's read or renewal, not a restart).
CREATE TABLE credential_holds (
    contract_id TEXT PRIMARY KEY,
    held_at BIGINT NOT NULL,
    reason TEXT NOT NULL
);
