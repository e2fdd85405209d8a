//! Registration and login over HTTP.

use api::auth::{Challenge, ChallengeRequest, RegisterRequest, Registered, Token, TokenRequest};
use api::Principal;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{ApiJson, Caller, ClientAddr, MaybeCaller};
use super::problem::Failure;
use super::AppState;

/// Registers a did with a role: providers and consumers register themselves; an operator's token
/// grants the auditor and operator roles.
#[utoipa::path(post, path = "/v1/participants", tag = "auth", operation_id = "register",
    request_body = RegisterRequest,
    security((), ("bearer" = [])),
    responses((status = 201, description = "Registered", body = Registered)))]
pub async fn register(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    MaybeCaller(caller): MaybeCaller,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<Registered>), Failure> {
    let done = app.auth.register(client, caller.as_ref(), &req).await?;
    Ok((StatusCode::CREATED, Json(done)))
}

/// A single-use login challenge for a did.
#[utoipa::path(post, path = "/v1/auth/challenge", tag = "auth", operation_id = "challenge",
    request_body = ChallengeRequest,
    responses((status = 200, description = "Sign the login message built from it", body = Challenge)))]
pub async fn challenge(
    State(app): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> Result<Json<Challenge>, Failure> {
    Ok(Json(app.auth.challenge(client, &req).await?))
}

/// A bearer token for a signed challenge.
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth", operation_id = "token",
    request_body = TokenRequest,
    responses((status = 200, description = "A bearer token", body = Token)))]
pub async fn token(
    State(app): State<AppState>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<Json<Token>, Failure> {
    Ok(Json(app.auth.token(&req).await?))
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", operation_id = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Principal)))]
pub async fn me(Caller(who): Caller) -> Json<Principal> {
    Json(who)
}
