//! Certified metrics over HTTP: certificates and the status list are public (anyone verifies);
//! an operator revokes or probes at once; reputation is public, with every component.

use api::certificates::{
    Certificate, CertificateList, CertificateQuery, Reputation, RevokeCertificate,
};
use api::Did;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use super::extract::{ApiJson, ApiPath, ApiQuery, As, Operators};
use super::problem::Failure;
use super::AppState;

/// Longest certificate id (`urn:uuid:` and a UUID).
const MAX_ID: usize = 45;

fn cert_id(id: String) -> Result<String, Failure> {
    if id.len() > MAX_ID || !id.starts_with("urn:uuid:") {
        return Err(Failure::bad_request(format!(
            "{id:?} is not a certificate id (urn:uuid:…)"
        )));
    }
    Ok(id)
}

/// Certificates, newest first: the valid ones, or all (`all=true`), of one provider or all.
#[utoipa::path(get, path = "/v1/certs", tag = "certification", operation_id = "list_certificates",
    params(CertificateQuery),
    responses((status = 200, description = "Certificates", body = CertificateList)))]
pub async fn list(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<CertificateQuery>,
) -> Result<Json<CertificateList>, Failure> {
    let items = app.market.certificates(q.provider.as_ref(), q.all).await?;
    Ok(Json(CertificateList { items }))
}

/// One certificate with its credential.
#[utoipa::path(get, path = "/v1/certs/{id}", tag = "certification", operation_id = "get_certificate",
    params(("id" = String, Path, description = "The certificate's id (urn:uuid:…)")),
    responses((status = 200, description = "The certificate", body = Certificate)))]
pub async fn get(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Certificate>, Failure> {
    Ok(Json(app.market.certificate(&cert_id(id)?).await?))
}

/// The Bitstring Status List credential every certificate's `credentialStatus` points at.
#[utoipa::path(get, path = "/v1/certs/status", tag = "certification", operation_id = "certificate_status_list",
    responses((status = 200, description = "The signed status list credential", content_type = "application/json", body = serde_json::Value)))]
pub async fn status_list(State(app): State<AppState>) -> Result<impl IntoResponse, Failure> {
    let list = app.market.status_list().await?;
    Ok(([(header::CACHE_CONTROL, "no-cache")], Json(list)))
}

/// An operator revokes a certificate: its status bit and its anchor on chain.
#[utoipa::path(post, path = "/v1/certs/{id}/revoke", tag = "certification", operation_id = "revoke_certificate",
    params(("id" = String, Path, description = "The certificate's id (urn:uuid:…)")),
    request_body = RevokeCertificate,
    security(("bearer" = [])),
    responses((status = 200, description = "Revoked", body = Certificate)))]
pub async fn revoke(
    State(app): State<AppState>,
    _: As<Operators>,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RevokeCertificate>,
) -> Result<Json<Certificate>, Failure> {
    Ok(Json(
        app.market
            .revoke_certificate(&cert_id(id)?, &req.reason)
            .await?,
    ))
}

/// An operator probes a provider now (outside its schedule); answers its valid certificates.
#[utoipa::path(post, path = "/v1/providers/{did}/probe", tag = "certification", operation_id = "probe_provider",
    params(("did" = Did, Path, description = "The provider's did:key")),
    security(("bearer" = [])),
    responses((status = 200, description = "Probed", body = CertificateList)))]
pub async fn probe(
    State(app): State<AppState>,
    _: As<Operators>,
    ApiPath(did): ApiPath<Did>,
) -> Result<Json<CertificateList>, Failure> {
    app.market.probe_provider(&did).await?;
    let items = app.market.certificates(Some(&did), false).await?;
    Ok(Json(CertificateList { items }))
}

/// A provider's reputation from its record, with every component.
#[utoipa::path(get, path = "/v1/providers/{did}/reputation", tag = "certification", operation_id = "provider_reputation",
    params(("did" = Did, Path, description = "The provider's did:key")),
    responses((status = 200, description = "The reputation", body = Reputation)))]
pub async fn reputation(
    State(app): State<AppState>,
    ApiPath(did): ApiPath<Did>,
) -> Result<Json<Reputation>, Failure> {
    Ok(Json(app.market.reputation(&did).await?))
}

/// Mercato's JSON-LD context for its credentials (the same bytes every verifier bundles).
#[utoipa::path(get, path = "/ns/credentials/v1", tag = "certification", operation_id = "credentials_context",
    responses((status = 200, description = "The JSON-LD context", content_type = "application/ld+json", body = serde_json::Value)))]
pub async fn context() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/ld+json"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        certify::context::CONTEXT,
    )
}
