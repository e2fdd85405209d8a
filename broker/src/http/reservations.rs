//! Reserve and purchase over HTTP.

use api::reservations::{PurchaseRequest, Reservation, ReserveRequest};
use api::{Contract, ReservationId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::extract::{Anyone, ApiJson, ApiPath, As, Consumers, IdempotencyKey};
use super::problem::Failure;
use super::AppState;
use crate::market::reservations::Purchased;

/// Holds units of a plan for a while, with the contract document and terms to sign.
#[utoipa::path(post, path = "/v1/reservations", tag = "reservations", operation_id = "reserve",
    request_body = ReserveRequest,
    security(("bearer" = [])),
    responses((status = 201, description = "Held", body = Reservation)))]
pub async fn create(
    State(app): State<AppState>,
    As { who, .. }: As<Consumers>,
    ApiJson(req): ApiJson<ReserveRequest>,
) -> Result<(StatusCode, Json<Reservation>), Failure> {
    let r = app.market.reserve(&who, &req).await?;
    Ok((StatusCode::CREATED, Json(r.view())))
}

/// A reservation, for its consumer and its provider (and auditors, operators).
#[utoipa::path(get, path = "/v1/reservations/{id}", tag = "reservations", operation_id = "reservation",
    params(("id" = ReservationId, Path, description = "The reservation's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "The reservation", body = Reservation)))]
pub async fn get(
    State(app): State<AppState>,
    As { who, .. }: As<Anyone>,
    ApiPath(id): ApiPath<ReservationId>,
) -> Result<Json<Reservation>, Failure> {
    Ok(Json(app.market.reservation(&who, id).await?.view()))
}

/// Buys a held reservation with the consumer's signatures. Answered before the chain confirms
/// (202); a retry with the same `Idempotency-Key` answers the same purchase (200).
#[utoipa::path(post, path = "/v1/reservations/{id}/purchase", tag = "reservations", operation_id = "purchase",
    params(
        ("id" = ReservationId, Path, description = "The reservation's id"),
        ("Idempotency-Key" = String, Header, description = "A fresh random value per purchase (1-128 characters)", min_length = 1, max_length = 128)),
    request_body = PurchaseRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Signed by the consumer; the provider signs next", body = Contract),
        (status = 200, description = "The purchase this key made before", body = Contract)))]
pub async fn purchase(
    State(app): State<AppState>,
    As { who, .. }: As<Consumers>,
    ApiPath(id): ApiPath<ReservationId>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<PurchaseRequest>,
) -> Result<(StatusCode, Json<Contract>), Failure> {
    Ok(match app.market.purchase(&who, id, &key, &req).await? {
        Purchased::Created(c) => (StatusCode::ACCEPTED, Json(c)),
        Purchased::Existing(c) => (StatusCode::OK, Json(c)),
    })
}
