-- Peering credentials: the broker keeps what it needs to verify and revoke (the secret's hash,
-- the consumer, the validity) and the envelope sealed to the consumer, never the secret itself.
CREATE TABLE credentials (
    hash TEXT PRIMARY KEY,
    contract_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    consumer TEXT NOT NULL,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    renew_before BIGINT NOT NULL,
    revoked_at BIGINT,
    sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX credentials_contract ON credentials (contract_id);
