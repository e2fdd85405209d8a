//! Errors as RFC 9457 problems, mapped by kind in one place: what the caller did wrong gets a
//! 4xx with a reason; an unavailable dependency (database, chain, content store) a 503; anything
//! else is the broker's fault, logged with an incident id and answered as a plain 500 without
//! driver text.

use api::problem::PROBLEM_JSON;
use api::Problem;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthFailure;
use crate::ledger_link::ChainError;
use crate::market::MarketError;
use crate::store::StoreError;

/// An error answer.
#[derive(Debug)]
pub struct Failure {
    pub problem: Problem,
    /// Seconds a rate-limited client should wait (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Failure {
    pub fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Self {
            problem: Problem::new(status.as_u16(), title, detail),
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// A dependency is down: the request can be retried.
    pub fn unavailable(what: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(dependency = what, error = %cause, "dependency unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable",
            format!("the {what} is unavailable; try again shortly"),
        )
    }

    /// The broker's own fault: logged in full, answered without internals.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let incident = identity::hex_encode(&rand::random::<[u8; 4]>());
        tracing::error!(%incident, error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            format!(
                "the broker could not complete this request (incident {incident}); it was logged"
            ),
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.problem).expect("problems serialise");
        let mut response = (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn sql(e: &sqlx::Error) -> Failure {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            Failure::unavailable("database", e)
        }
        other => Failure::internal(other),
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Sql(s) | StoreError::Open(s) => sql(s),
            StoreError::Catalog(catalog::store::StoreError::Sql(s)) => sql(s),
            _ => Self::internal(&e),
        }
    }
}

impl From<ChainError> for Failure {
    fn from(e: ChainError) -> Self {
        use ledger::ClientError as C;
        match &e {
            ChainError::Client(C::Unreachable { .. } | C::Timeout { .. } | C::Rpc(_)) => {
                Self::unavailable("chain", &e)
            }
            _ => Self::internal(&e),
        }
    }
}

impl From<MarketError> for Failure {
    fn from(e: MarketError) -> Self {
        use MarketError as M;
        let detail = e.to_string();
        match e {
            M::SoldOut { .. } | M::WrongState { .. } | M::IdempotencyConflict | M::Conflict(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", detail)
            }
            M::ReservationGone(_) => Self::new(StatusCode::GONE, "gone", detail),
            M::NoContract(_) | M::NoOffer(_) | M::NotFound(_) => Self::not_found(detail),
            M::NotLinked(_) => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "account not linked",
                detail,
            ),
            M::Terms(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "cannot buy this", detail),
            M::BadSignature(_) => Self::new(StatusCode::BAD_REQUEST, "bad signature", detail),
            M::BadRequest(_) => Self::bad_request(detail),
            M::Forbidden(_) => Self::forbidden(detail),
            M::Refused { title, detail } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, title, detail)
            }
            M::Store(s) => s.into(),
            M::Catalog(c) => StoreError::Catalog(c).into(),
            M::Chain(c) => c.into(),
            M::Content(c) => match c {
                content::ContentError::Unreachable { .. }
                | content::ContentError::Node500 { .. } => Self::unavailable("content store", &c),
                other => Self::internal(&other),
            },
            M::IllegalMove { .. } | M::Corrupt(_) => Self::internal(&detail),
        }
    }
}

impl From<AuthFailure> for Failure {
    fn from(e: AuthFailure) -> Self {
        let detail = e.to_string();
        match e {
            AuthFailure::Unauthorized(_) => Self::unauthorized(detail),
            AuthFailure::Forbidden(_) => Self::forbidden(detail),
            AuthFailure::BadRequest(_) => Self::bad_request(detail),
            AuthFailure::Conflict(_) => Self::new(StatusCode::CONFLICT, "conflict", detail),
            AuthFailure::RateLimited { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too many requests", detail)
            },
            AuthFailure::Store(s) => s.into(),
        }
    }
}
