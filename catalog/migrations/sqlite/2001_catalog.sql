-- Current state of every offer (withdrawn ones stay, for audits).
CREATE TABLE offers (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'withdrawn')),
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    withdrawn_at INTEGER
);
CREATE INDEX offers_provider ON offers (provider);

-- Every version ever published.
CREATE TABLE offer_versions (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (id, version)
);

-- One row per plan of every active offer: what plain SQL queries run on.
CREATE TABLE plans (
    offer_id TEXT NOT NULL,
    plan_index INTEGER NOT NULL,
    plan_id TEXT NOT NULL,
    has_compute BOOLEAN NOT NULL,
    has_gpu BOOLEAN NOT NULL,
    has_network BOOLEAN NOT NULL,
    has_data BOOLEAN NOT NULL,
    main_class INTEGER NOT NULL,
    provider TEXT NOT NULL,
    country TEXT NOT NULL,
    region TEXT NOT NULL,
    architecture TEXT,
    gpu_model TEXT,
    cpu_millicores INTEGER NOT NULL,
    memory_mib INTEGER NOT NULL,
    gpu_memory_mib INTEGER NOT NULL,
    gpu_permille INTEGER NOT NULL,
    bandwidth_mbps INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    price_compute REAL NOT NULL,
    price_gpu REAL NOT NULL,
    price_network REAL NOT NULL,
    price_data REAL NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    green INTEGER NOT NULL,
    cert_latency_ms REAL NOT NULL,
    cert_uptime REAL NOT NULL,
    tiebreak INTEGER NOT NULL,
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
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    offer_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('published', 'withdrawn')),
    at INTEGER NOT NULL
);
