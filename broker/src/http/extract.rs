//! Extractors: every rejection is a problem with a reason (bodies, queries, paths), and who may
//! call what is decided here, once: the caller (`Caller`), its role (`As<R>`), and its relation
//! to the contract the path names (`ContractOf<A>`: 403 for a role that may not, 404 for a
//! contract that is not the caller's).

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use api::{ContractId, Principal, Role};
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;

use super::problem::Failure;
use super::AppState;
use crate::market::records::{self, ContractRecord};

/// Largest JSON body the API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

fn body_failure(status: StatusCode, text: String) -> Failure {
    let title = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported media type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable body",
        _ => "bad request",
    };
    Failure::new(status, title, text)
}

/// `Json` whose rejections are problems: a body that is not the expected JSON, too large, or
/// without a JSON content type gets a reason.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Failure> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(r @ JsonRejection::JsonDataError(_)) => {
                Err(body_failure(r.status(), r.body_text()))
            }
            Err(r) => Err(body_failure(r.status(), r.body_text())),
        }
    }
}

/// The raw body (up to the limit), rejections as problems.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Failure;

    async fn from_request(req: Request, state: &S) -> Result<Self, Failure> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(|r: BytesRejection| body_failure(r.status(), r.body_text()))
    }
}

/// `Query` whose rejections (malformed, unknown or out-of-range parameters) are 400 problems.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|r: QueryRejection| Failure::bad_request(r.body_text()))
    }
}

/// `Path` whose rejections (an id that is not one) are 400 problems.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Failure> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|r: PathRejection| Failure::bad_request(r.body_text()))
    }
}

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                Failure::unauthorized(
                    "send Authorization: Bearer <token> (POST /v1/auth/challenge, then /v1/auth/token)",
                )
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                Failure::unauthorized("the Authorization header is not a Mercato bearer token")
            })?;
        Ok(Self(state.auth.principal(token).await?))
    }
}

/// The caller when the request carries a token, none when it carries none; a bad token is
/// still refused.
pub struct MaybeCaller(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            Caller::from_request_parts(parts, state)
                .await
                .map(|Caller(p)| Self(Some(p)))
        } else {
            Ok(Self(None))
        }
    }
}

/// Roles allowed to call an endpoint.
pub trait Roles: Send + Sync {
    const ROLES: &'static [Role];
}

fn check_role(who: &Principal, roles: &[Role]) -> Result<(), Failure> {
    if roles.is_empty() || roles.contains(&who.role) {
        return Ok(());
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(Failure::forbidden(format!(
        "this is for {} participants; you are {}",
        names.join(" or "),
        who.role
    )))
}

macro_rules! roles {
    ($($name:ident => [$($role:ident),*];)*) => {$(
        pub struct $name;
        impl Roles for $name {
            const ROLES: &'static [Role] = &[$(Role::$role),*];
        }
    )*};
}

roles! {
    Consumers => [Consumer];
    Providers => [Provider];
    Operators => [Operator];
    Auditors => [Auditor, Operator];
    Parties => [Consumer, Provider];
    Anyone => [];
}

/// The caller, in one of `R`'s roles.
pub struct As<R: Roles> {
    pub who: Principal,
    role: PhantomData<R>,
}

impl<R: Roles> FromRequestParts<AppState> for As<R> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let Caller(who) = Caller::from_request_parts(parts, state).await?;
        check_role(&who, R::ROLES)?;
        Ok(Self {
            who,
            role: PhantomData,
        })
    }
}

/// Who may act on a contract: some roles, and a relation to the contract.
pub trait Access: Roles {
    fn admits(who: &Principal, c: &ContractRecord) -> bool;
}

impl Access for Anyone {
    /// Its parties, auditors and operators.
    fn admits(who: &Principal, c: &ContractRecord) -> bool {
        who.role.oversees() || c.is_party(&who.did)
    }
}

impl Access for Consumers {
    fn admits(who: &Principal, c: &ContractRecord) -> bool {
        who.did == c.consumer
    }
}

impl Access for Providers {
    fn admits(who: &Principal, c: &ContractRecord) -> bool {
        who.did == c.provider
    }
}

impl Access for Parties {
    fn admits(who: &Principal, c: &ContractRecord) -> bool {
        c.is_party(&who.did)
    }
}

impl Access for Operators {
    fn admits(_: &Principal, _: &ContractRecord) -> bool {
        true
    }
}

/// The contract the path's `{id}` names, when the caller may act on it as `A` says.
pub struct ContractOf<A: Access> {
    pub who: Principal,
    pub contract: ContractRecord,
    _access: PhantomData<A>,
}

impl<A: Access> FromRequestParts<AppState> for ContractOf<A> {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let As { who, .. } = As::<A>::from_request_parts(parts, state).await?;
        let ApiPath(id) = ApiPath::<ContractId>::from_request_parts(parts, state).await?;
        let contract = records::get_contract(&state.market.store, id)
            .await?
            .filter(|c| A::admits(&who, c))
            .ok_or_else(|| Failure::not_found(format!("no contract {id} of yours")))?;
        Ok(Self {
            who,
            contract,
            _access: PhantomData,
        })
    }
}

/// The `Idempotency-Key` header a purchase needs, so a retry cannot buy twice.
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        let key = parts
            .headers
            .get("idempotency-key")
            .ok_or_else(|| Failure::bad_request("send an Idempotency-Key header (a fresh random value per purchase) so a retry cannot buy twice"))?
            .to_str()
            .map_err(|_| Failure::bad_request("Idempotency-Key must be visible ASCII"))?;
        if key.is_empty() || key.len() > 128 {
            return Err(Failure::bad_request(
                "Idempotency-Key must be 1-128 characters",
            ));
        }
        Ok(Self(key.to_string()))
    }
}

/// The client's address, when the server knows it (rate limits).
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Failure> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
