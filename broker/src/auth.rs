//! Registration and login. A participant registers its did:key with a self-service role by
//! signing a registration message; operators grant the other roles. Login: ask for a challenge,
//! sign the login message built from it, get a bearer token (stored only as its hash). The two
//! endpoints that need no login are rate-limited per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use api::auth::{Challenge, ChallengeRequest, RegisterRequest, Registered, Token, TokenRequest};
use api::{Did, Principal, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::store::{now, AuthError, Store, StoreError};

/// How long a login challenge can be answered.
pub const CHALLENGE_TTL_SECS: u64 = 120;
/// How long a bearer token is valid.
pub const TOKEN_TTL_SECS: u64 = 15 * 60;
/// How far a registration's timestamp may be from the broker's clock.
const REGISTRATION_SKEW_SECS: u64 = 300;

/// Why an authentication request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests from this address; try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AuthFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Auth(a @ (AuthError::BadChallenge | AuthError::BadToken)) => {
                Self::Unauthorized(a.to_string())
            }
            StoreError::Auth(a @ AuthError::NotRegistered(_)) => Self::Forbidden(a.to_string()),
            StoreError::Auth(a @ AuthError::AlreadyRegistered { .. }) => {
                Self::Conflict(a.to_string())
            }
            other => Self::Store(other),
        }
    }
}

/// 32 random bytes as hex: nonces and tokens.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    identity::hex_encode(&b)
}

/// Tokens are stored only as their hash, so a database leak gives no usable token.
pub fn token_hash(token: &str) -> String {
    identity::hex_encode(&Sha256::digest(token.as_bytes()))
}

/// A token bucket per client address: `per_minute` requests a minute, in bursts of as many.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Addresses remembered at most (the oldest are forgotten first when full).
const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `addr`'s bucket, or says how long until there is one.
    pub fn take(&self, addr: IpAddr, at: Instant) -> Result<(), u64> {
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&addr) {
            // Full buckets carry no information: forget them first.
            buckets.retain(|_, (tokens, last)| {
                *tokens + at.duration_since(*last).as_secs_f64() * per_sec < capacity
            });
            if buckets.len() >= MAX_TRACKED {
                buckets.clear();
            }
        }
        let (tokens, last) = buckets.entry(addr).or_insert((capacity, at));
        *tokens = (*tokens + at.duration_since(*last).as_secs_f64() * per_sec).min(capacity);
        *last = at;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// The login and registration use cases.
pub struct Auth {
    store: Store,
    /// Names this broker in the messages participants sign.
    audience: String,
    /// The broker's did: logins and registrations name it.
    did: Did,
    /// How clients reach it (`scheme://host:port`): a login is signed for one of them.
    origins: Vec<String>,
    limiter: RateLimiter,
}

impl Auth {
    /// `origins`: the `scheme://host:port` forms clients reach this broker by; a login signed
    /// for any other is refused.
    pub fn new(
        store: Store,
        audience: String,
        did: Did,
        origins: Vec<String>,
        per_minute: u32,
    ) -> Self {
        Self {
            store,
            audience,
            did,
            origins,
            limiter: RateLimiter::new(per_minute),
        }
    }

    fn limit(&self, client: Option<IpAddr>) -> Result<(), AuthFailure> {
        match client {
            Some(addr) => self
                .limiter
                .take(addr, Instant::now())
                .map_err(|retry_after| AuthFailure::RateLimited { retry_after }),
            // In-process calls (tests) have no address.
            None => Ok(()),
        }
    }

    /// A did registers itself with a self-service role, or an operator grants it another.
    pub async fn register(
        &self,
        client: Option<IpAddr>,
        caller: Option<&Principal>,
        req: &RegisterRequest,
    ) -> Result<Registered, AuthFailure> {
        self.limit(client)?;
        let now = now();
        if req.issued_at.abs_diff(now) > REGISTRATION_SKEW_SECS {
            return Err(AuthFailure::BadRequest(
                "issuedAt is more than 5 minutes from the broker's clock; sign a fresh registration"
                    .into(),
            ));
        }
        let signed_here = self.origins.iter().any(|origin| {
            let message = identity::registration_message(
                &self.audience,
                origin,
                &self.did,
                &req.did,
                req.role.as_str(),
                req.issued_at,
            );
            req.signature
                .verify(&req.did, identity::Domain::Registration, message.as_bytes())
                .is_ok()
        });
        if !signed_here {
            return Err(AuthFailure::Unauthorized(format!(
                "the signature does not verify for a registration with this broker ({})",
                self.origins.join(", ")
            )));
        }
        if !req.role.self_service() && caller.map(|p| p.role) != Some(Role::Operator) {
            return Err(AuthFailure::Forbidden(format!(
                "only an operator can grant the {} role",
                req.role
            )));
        }
        self.store
            .register_participant(&req.did, req.role, now)
            .await?;
        Ok(Registered {
            did: req.did.clone(),
            role: req.role,
        })
    }

    pub async fn challenge(
        &self,
        client: Option<IpAddr>,
        req: &ChallengeRequest,
    ) -> Result<Challenge, AuthFailure> {
        self.limit(client)?;
        let nonce = random_hex();
        let expires_at = now() + CHALLENGE_TTL_SECS;
        self.store
            .create_challenge(&req.did, &nonce, expires_at)
            .await?;
        Ok(Challenge { nonce, expires_at })
    }

    pub async fn token(&self, req: &TokenRequest) -> Result<Token, AuthFailure> {
        // Consumed first: a challenge is spent whether the signature turns out good or not.
        let expires_at = self
            .store
            .consume_challenge(&req.did, &req.nonce, now())
            .await?;
        // Signed for this broker, by one of the origins it is reached at.
        let signed_here = self.origins.iter().any(|origin| {
            let message = identity::login_message(
                &self.audience,
                origin,
                &self.did,
                &req.did,
                &req.nonce,
                expires_at,
            );
            req.signature
                .verify(&req.did, identity::Domain::Login, message.as_bytes())
                .is_ok()
        });
        if !signed_here {
            return Err(AuthFailure::Unauthorized(format!(
                "the signature does not verify for a login to this broker ({})",
                self.origins.join(", ")
            )));
        }
        let role = self
            .store
            .participant_role(&req.did)
            .await?
            .ok_or_else(|| {
                AuthFailure::from(StoreError::Auth(AuthError::NotRegistered(req.did.clone())))
            })?;
        let token = random_hex();
        let expires_at = now() + TOKEN_TTL_SECS;
        self.store
            .store_token(&token_hash(&token), &req.did, role, expires_at)
            .await?;
        Ok(Token {
            token,
            role,
            expires_at,
        })
    }

    /// Who a bearer token belongs to.
    pub async fn principal(&self, token: &str) -> Result<Principal, AuthFailure> {
        Ok(self.store.principal(&token_hash(token), now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_limiter_allows_a_burst_then_refills() {
        let l = RateLimiter::new(3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            l.take(a, t0).unwrap();
        }
        let wait = l.take(a, t0).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        // Another address has its own bucket.
        l.take(b, t0).unwrap();
        // 3 a minute: one more after 20 s.
        l.take(a, t0 + Duration::from_secs(21)).unwrap();
        assert!(l.take(a, t0 + Duration::from_secs(21)).is_err());
    }

    #[test]
    fn tokens_are_kept_as_hashes() {
        assert_ne!(random_hex(), random_hex());
        assert_eq!(token_hash("t").len(), 64);
        assert_ne!(token_hash("t"), "t");
    }
}
