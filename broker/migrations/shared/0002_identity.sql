-- Participants known to the broker, by did:key, with their role.
CREATE TABLE participants (
    did TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('provider', 'consumer', 'auditor', 'operator')),
    registered_at BIGINT NOT NULL
);

-- Login challenges: single use, short-lived.
CREATE TABLE auth_challenges (
    nonce TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0
);

-- Bearer tokens, stored only as their SHA-256.
CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    role TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
