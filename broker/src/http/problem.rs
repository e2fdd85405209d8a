//! RFC 9457 problem details: every error the API returns is `application/problem+json` with a
//! title and a reason a client can act on.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".into(),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad request", detail)
    }

    pub fn unavailable(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, title, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

impl From<crate::market::MarketError> for Problem {
    fn from(e: crate::market::MarketError) -> Self {
        use crate::market::MarketError as M;
        let detail = e.to_string();
        match e {
            M::SoldOut { .. } | M::WrongState { .. } | M::IdempotencyConflict => {
                Self::new(StatusCode::CONFLICT, "conflict", detail)
            }
            M::ReservationGone(_) => Self::new(StatusCode::GONE, "gone", detail),
            M::NoContract(_) | M::NoOffer(_) => Self::not_found(detail),
            M::NotLinked(_) => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "account not linked",
                detail,
            ),
            M::Terms(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "cannot buy this", detail),
            M::BadSignature(_) => Self::new(StatusCode::BAD_REQUEST, "bad signature", detail),
            M::Corrupt(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", detail),
            M::Chain(_) => Self::unavailable("chain unavailable", detail),
            M::Content(_) => Self::unavailable("content store unavailable", detail),
            M::Store(_) => Self::unavailable("database unavailable", detail),
        }
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        Self::unavailable("database unavailable", e.to_string())
    }
}

impl From<sqlx::Error> for Problem {
    fn from(e: sqlx::Error) -> Self {
        Self::unavailable("database unavailable", e.to_string())
    }
}
