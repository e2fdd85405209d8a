-- WireGuard tunnel addresses, allocated per provider: one per contract (kept across renewals),
-- never two contracts on one address, nothing derived from a credential's secret.
CREATE TABLE tunnel_addresses (
    provider TEXT NOT NULL,
    host BIGINT NOT NULL,
    contract_id TEXT NOT NULL,
    PRIMARY KEY (provider, host),
    UNIQUE (provider, contract_id)
);
