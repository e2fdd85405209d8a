-- The marketplace flow: linked accounts, provider configurations, reservations and contracts.
-- (The outbox is 0004, one file per backend: its sequence is AUTOINCREMENT / BIGSERIAL.)

ALTER TABLE participants ADD COLUMN account TEXT;
CREATE UNIQUE INDEX participants_account ON participants (account);

-- Every configuration a provider registered on chain, newest has the highest version.
CREATE TABLE provider_configs (
    did TEXT NOT NULL,
    version BIGINT NOT NULL,
    cid TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (did, version)
);

-- Units of a plan held by reservations and live contracts; `held <= capacity` is what keeps a
-- plan from being oversold, by one conditional UPDATE under concurrency.
CREATE TABLE plan_capacity (
    offer_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    capacity BIGINT NOT NULL,
    held BIGINT NOT NULL CHECK (held >= 0),
    PRIMARY KEY (offer_id, plan_id)
);

CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    consumer TEXT NOT NULL,
    provider TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('held', 'purchasing', 'purchased', 'expired', 'released')),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    -- The contract document offered with the reservation and what the consumer signs.
    document TEXT NOT NULL,
    document_cid TEXT NOT NULL,
    terms TEXT NOT NULL
);
CREATE INDEX reservations_held ON reservations (status, expires_at);

-- Contracts and their purchase state machine.
CREATE TABLE contracts (
    id TEXT PRIMARY KEY,
    reservation_id TEXT NOT NULL UNIQUE,
    consumer TEXT NOT NULL,
    provider TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('proposed', 'accepted', 'opening', 'active', 'closing', 'closed', 'failed')),
    document_cid TEXT NOT NULL,
    signatures_cid TEXT,
    consumer_signature TEXT NOT NULL,
    provider_signature TEXT,
    open_authorization TEXT NOT NULL,
    deadline BIGINT NOT NULL,
    tx_hash TEXT,
    refund TEXT,
    failure TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (consumer, idempotency_key)
);
CREATE INDEX contracts_state ON contracts (state);
CREATE INDEX contracts_consumer ON contracts (consumer);
CREATE INDEX contracts_provider ON contracts (provider);
