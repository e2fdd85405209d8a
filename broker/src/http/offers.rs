//! The catalog over HTTP: search, facets, one offer, its history (public: browsing needs no
//! login), publishing and withdrawing (the offer's provider only).

use api::offers::{
    CanonicalOffer, OfferDocument, Published, SearchPage, SearchParams, WithdrawnOffer,
};
use api::OfferId;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use catalog::model::Offer;
use catalog::query::Facets;

use super::extract::{ApiBytes, ApiPath, As, Providers};
use super::problem::Failure;
use super::AppState;

/// Parses a catalog query (the same parser the SDK uses, so errors read the same).
fn parse_query(raw: Option<String>) -> Result<catalog::Query, Failure> {
    let raw = raw.unwrap_or_default();
    if raw.len() > 8 * 1024 {
        return Err(Failure::bad_request("query string longer than 8 KiB"));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    catalog::params::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| Failure::bad_request(e.to_string()))
}

/// Searches plans: filters on any attribute, a ranking, cursor pages.
#[utoipa::path(get, path = "/v1/offers", tag = "offers", operation_id = "search_offers",
    params(SearchParams),
    responses((status = 200, description = "One page of plans", body = SearchPage)))]
pub async fn search(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchPage>, Failure> {
    Ok(Json(app.market.search(parse_query(raw)?).await?))
}

/// Counts per class, region, GPU model and price bucket of the plans a query matches.
#[utoipa::path(get, path = "/v1/offers/facets", tag = "offers", operation_id = "offer_facets",
    params(SearchParams),
    responses((status = 200, description = "Counts", body = Facets)))]
pub async fn facets(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Facets>, Failure> {
    Ok(Json(app.market.facets(parse_query(raw)?).await))
}

/// One offer, active or withdrawn.
#[utoipa::path(get, path = "/v1/offers/{id}", tag = "offers", operation_id = "get_offer",
    params(("id" = OfferId, Path, description = "The offer's id")),
    responses((status = 200, description = "The offer", body = OfferDocument)))]
pub async fn get(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<OfferId>,
) -> Result<Json<OfferDocument>, Failure> {
    Ok(Json(app.market.offer(&id).await?))
}

/// Every version of an offer, oldest first.
#[utoipa::path(get, path = "/v1/offers/{id}/history", tag = "offers", operation_id = "offer_history",
    params(("id" = OfferId, Path, description = "The offer's id")),
    responses((status = 200, description = "Its versions", body = Vec<Offer>)))]
pub async fn history(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<OfferId>,
) -> Result<Json<Vec<Offer>>, Failure> {
    Ok(Json(app.market.offer_history(&id).await?))
}

/// Publishes an offer (version 1) or a new version of one: the offer signed by its provider,
/// who must be the caller.
#[utoipa::path(post, path = "/v1/offers", tag = "offers", operation_id = "publish_offer",
    request_body = Offer,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Published (version 1)", body = Published),
        (status = 200, description = "A new version published", body = Published)))]
pub async fn publish(
    State(app): State<AppState>,
    As { who, .. }: As<Providers>,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<Published>), Failure> {
    let (first, published) = app.market.publish(&who, &body).await?;
    let status = if first {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(published)))
}

/// The exact bytes to sign for an offer of the caller's (its canonical form), once every field
/// is valid: a client that cannot serialise the offer as the catalog does (a browser) checks they
/// say what it wrote, signs them and publishes.
#[utoipa::path(post, path = "/v1/offers/canonical", tag = "offers", operation_id = "canonical_offer",
    request_body = Offer,
    security(("bearer" = [])),
    responses((status = 200, description = "The bytes to sign", body = CanonicalOffer)))]
pub async fn canonical(
    State(app): State<AppState>,
    As { who, .. }: As<Providers>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<CanonicalOffer>, Failure> {
    Ok(Json(app.market.canonical_offer(&who, &body)?))
}

/// Withdraws an offer of the caller's: it is no longer sold, and stays readable (with status
/// `withdrawn`) for the contracts bought from it, so this is not a DELETE.
#[utoipa::path(post, path = "/v1/offers/{id}/withdraw", tag = "offers", operation_id = "withdraw_offer",
    params(("id" = OfferId, Path, description = "The offer's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "Withdrawn", body = WithdrawnOffer)))]
pub async fn withdraw(
    State(app): State<AppState>,
    As { who, .. }: As<Providers>,
    ApiPath(id): ApiPath<OfferId>,
) -> Result<Json<WithdrawnOffer>, Failure> {
    Ok(Json(app.market.withdraw(&who, &id).await?))
}
