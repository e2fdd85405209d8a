-- Which deployment this database belongs to: one row. The broker refuses to start against a
-- different chain or marketplace, so records of one ledger never mix with another's.
CREATE TABLE ledger_binding (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    chain_id BIGINT NOT NULL,
    marketplace TEXT NOT NULL,
    deployment_block BIGINT NOT NULL,
    bound_at BIGINT NOT NULL
);
