//! Registration and login. A participant registers its did:key with a self-service role by
//! signing a registration message; operators grant the other roles. Login: ask for a challenge,
//! sign it, get a bearer token. Every other authenticated endpoint takes a `Principal`.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use catalog::identity;
use serde::{Deserialize, Serialize};

use super::problem::Problem;
use super::{ApiJson, AppState};
use crate::identity::{self as id, Principal, Role};
use crate::store::{AuthError, StoreError};

/// How far a registration's timestamp may be from the broker's clock.
const REGISTRATION_SKEW_SECS: u64 = 300;

fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Auth(a @ (AuthError::BadChallenge | AuthError::BadToken)) => {
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", a.to_string())
        }
        StoreError::Auth(a @ AuthError::NotRegistered(_)) => {
            Problem::new(StatusCode::FORBIDDEN, "forbidden", a.to_string())
        }
        StoreError::Auth(a @ AuthError::AlreadyRegistered { .. }) => {
            Problem::new(StatusCode::CONFLICT, "conflict", a.to_string())
        }
        other => Problem::unavailable("database unavailable", other.to_string()),
    }
}

fn check_did(did: &str) -> Result<(), Problem> {
    identity::key_of(did)
        .map(|_| ())
        .map_err(|e| Problem::bad_request(e.to_string()))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let unauthorized =
            |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send Authorization: Bearer <token> (POST /v1/auth/challenge, then /v1/auth/token)"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                unauthorized("the Authorization header is not a Mercato bearer token")
            })?;
        state
            .store
            .principal(&id::token_hash(token), id::now())
            .await
            .map_err(store_problem)
    }
}

/// The principal when the request carries a token, none when it carries none; a bad token is
/// still refused.
pub struct MaybePrincipal(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybePrincipal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            Principal::from_request_parts(parts, state)
                .await
                .map(|p| Self(Some(p)))
        } else {
            Ok(Self(None))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    pub did: String,
    pub role: Role,
    /// Unix seconds when the participant signed; within 5 minutes of the broker's clock.
    pub issued_at: u64,
    /// Hex Ed25519 signature of `registration_message` by the did's key.
    pub signature: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub did: String,
    pub role: Role,
}

pub async fn register(
    State(state): State<AppState>,
    MaybePrincipal(caller): MaybePrincipal,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<Registered>), Problem> {
    check_did(&req.did)?;
    let now = id::now();
    if req.issued_at.abs_diff(now) > REGISTRATION_SKEW_SECS {
        return Err(Problem::bad_request(
            "issuedAt is more than 5 minutes from the broker's clock; sign a fresh registration",
        ));
    }
    let message = id::registration_message(&state.audience, &req.did, req.role, req.issued_at);
    identity::verify_hex(&req.did, message.as_bytes(), &req.signature)
        .map_err(|e| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))?;
    if !req.role.self_service() && caller.as_ref().map(|p| p.role) != Some(Role::Operator) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("only an operator can grant the {} role", req.role.as_str()),
        ));
    }
    state
        .store
        .register_participant(&req.did, req.role, now)
        .await
        .map_err(store_problem)?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            did: req.did,
            role: req.role,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChallengeRequest {
    pub did: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    pub nonce: String,
    pub expires_at: u64,
    /// The exact text to sign.
    pub message: String,
}

pub async fn challenge(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> Result<Json<Challenge>, Problem> {
    check_did(&req.did)?;
    let nonce = id::random_hex();
    let expires_at = id::now() + id::CHALLENGE_TTL_SECS;
    state
        .store
        .create_challenge(&req.did, &nonce, expires_at)
        .await
        .map_err(store_problem)?;
    let message = id::login_message(&state.audience, &req.did, &nonce, expires_at);
    Ok(Json(Challenge {
        nonce,
        expires_at,
        message,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    pub did: String,
    pub nonce: String,
    pub signature: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub token: String,
    pub role: Role,
    pub expires_at: u64,
}

pub async fn token(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<Json<Token>, Problem> {
    check_did(&req.did)?;
    // Consumed first: a challenge is spent whether the signature turns out good or not.
    let expires_at = state
        .store
        .consume_challenge(&req.did, &req.nonce, id::now())
        .await
        .map_err(store_problem)?;
    let message = id::login_message(&state.audience, &req.did, &req.nonce, expires_at);
    identity::verify_hex(&req.did, message.as_bytes(), &req.signature)
        .map_err(|e| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))?;
    let role = state
        .store
        .participant_role(&req.did)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| {
            store_problem(StoreError::Auth(AuthError::NotRegistered(req.did.clone())))
        })?;
    let token = id::random_hex();
    let expires_at = id::now() + id::TOKEN_TTL_SECS;
    state
        .store
        .store_token(&id::token_hash(&token), &req.did, role, expires_at)
        .await
        .map_err(store_problem)?;
    Ok(Json(Token {
        token,
        role,
        expires_at,
    }))
}

pub async fn me(principal: Principal) -> Json<Principal> {
    Json(principal)
}
