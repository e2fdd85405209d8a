-- Current state of every offer (withdrawn ones stay, for audits).
CREATE TABLE offers (
    id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'withdrawn')),
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    withdrawn_at BIGINT
);
CREATE INDEX offers_provider ON offers (provider);

-- Every version ever published.
CREATE TABLE offer_versions (
    id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (id, version)
);

-- One row per plan of every active offer: what plain SQL queries run on.
CREATE TABLE plans (
    offer_id TEXT NOT NULL,
    plan_index BIGINT NOT NULL,
    plan_id TEXT NOT NULL,
    has_compute BOOLEAN NOT NULL,
    has_gpu BOOLEAN NOT NULL,
    has_network BOOLEAN NOT NULL,
    has_data BOOLEAN NOT NULL,
    main_class BIGINT NOT NULL,
    provider TEXT NOT NULL,
    country TEXT NOT NULL,
    region TEXT NOT NULL,
    architecture TEXT,
    gpu_model TEXT,
    cpu_millicores BIGINT NOT NULL,
    memory_mib BIGINT NOT NULL,
    gpu_memory_mib BIGINT NOT NULL,
    gpu_permille BIGINT NOT NULL,
    bandwidth_mbps BIGINT NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    price_compute DOUBLE PRECISION NOT NULL,
    price_gpu DOUBLE PRECISION NOT NULL,
    price_network DOUBLE PRECISION NOT NULL,
    price_data DOUBLE PRECISION NOT NULL,
    latitude DOUBLE PRECISION NOT NULL,
    longitude DOUBLE PRECISION NOT NULL,
    green BIGINT NOT NULL,
    cert_latency_ms DOUBLE PRECISION NOT NULL,
    cert_uptime DOUBLE PRECISION NOT NULL,
    tiebreak BIGINT NOT NULL,
    words TEXT NOT NULL,
    PRIMARY KEY (offer_id, plan_index)
);
CREATE INDEX plans_region ON plans (region);
CREATE INDEX plans_country ON plans (country);
CREATE INDEX plans_gpu ON plans (gpu_model, gpu_memory_mib);
CREATE INDEX plans_cpu ON plans (cpu_millicores);
CREATE INDEX plans_price_compute ON plans (price_compute);
CREATE INDEX plans_price_gpu ON plans (price_gpu);
CREATE INDEX plans_geo ON plans (latitude, longitude);
CREATE INDEX plans_provider ON plans (provider);

-- The change log every index follows (also across broker processes sharing the database).
CREATE TABLE offer_changes (
    seq BIGSERIAL PRIMARY KEY,
    offer_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('published', 'withdrawn')),
    at BIGINT NOT NULL
);
