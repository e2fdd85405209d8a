-- What the prober saw of each provider: one row per probe (reachable or not, and why), with
-- the round trips it took, so uptime and latency are computed over any window.
CREATE TABLE probe_samples (
    provider TEXT NOT NULL,
    at BIGINT NOT NULL,
    ok BIGINT NOT NULL CHECK (ok IN (0, 1)),
    round_trips TEXT NOT NULL,
    -- The configuration whose endpoint was probed (a new one is probed at once).
    config_cid TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (provider, at)
);
-- The certified-metric credentials the broker issued: the document as stored in the content
-- store (its CID) and anchored on chain (its hash), its bit in the status list, and whether a
-- newer measurement superseded it or it was revoked.
CREATE TABLE certificates (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    metric TEXT NOT NULL,
    status_index BIGINT NOT NULL UNIQUE,
    hash TEXT NOT NULL UNIQUE,
    cid TEXT NOT NULL,
    document TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    anchor_tx TEXT,
    superseded_by TEXT,
    revoked_at BIGINT,
    revoke_reason TEXT,
    revoke_tx TEXT
);
CREATE INDEX certificates_provider ON certificates (provider, metric);
-- The signed status list as last issued (re-issued on every revocation).
CREATE TABLE status_lists (
    id BIGINT PRIMARY KEY,
    document TEXT NOT NULL,
    issued_at BIGINT NOT NULL
);
-- One prober among the broker's replicas: the one holding the lease (renewed every round).
CREATE TABLE prober_lease (
    id BIGINT PRIMARY KEY,
    holder TEXT NOT NULL,
    until BIGINT NOT NULL
);
CREATE INDEX probe_samples_at ON probe_samples (at);
-- Reputation counts a provider's records.
CREATE INDEX usage_provider ON usage_records (provider);
