//! Catalog reads: search, facets, one offer, its history. Public (browsing needs no login); every
//! write path comes with authentication in the marketplace flow.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use catalog::api::{OfferDocument, SearchItem, SearchPage};
use catalog::model::Offer;
use catalog::params;
use catalog::query::Facets;

use super::problem::Problem;
use super::AppState;

fn parse_query(raw: Option<String>) -> Result<catalog::Query, Problem> {
    let raw = raw.unwrap_or_default();
    if raw.len() > 8 * 1024 {
        return Err(Problem::bad_request("query string longer than 8 KiB"));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    params::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| Problem::bad_request(e.to_string()))
}

pub async fn search(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchPage>, Problem> {
    let q = parse_query(raw)?;
    let index = state.index.read().unwrap_or_else(|e| e.into_inner());
    let page = index.search(&q);
    Ok(Json(SearchPage {
        items: page
            .hits
            .iter()
            .map(|h| SearchItem::new(&h.offer, h.plan_index, h.key))
            .collect(),
        total: page.total,
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

pub async fn facets(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Facets>, Problem> {
    let q = parse_query(raw)?;
    let index = state.index.read().unwrap_or_else(|e| e.into_inner());
    Ok(Json(index.facets(&q)))
}

fn check_id(id: &str) -> Result<(), Problem> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(Problem::bad_request(format!(
            "{id:?} is not an offer id (1-64 of A-Z a-z 0-9 . _ -)"
        )));
    }
    Ok(())
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<OfferDocument>, Problem> {
    check_id(&id)?;
    let stored = state
        .catalog
        .get(&id)
        .await
        .map_err(|e| Problem::unavailable("catalog unavailable", e.to_string()))?
        .ok_or_else(|| Problem::not_found(format!("no offer {id}")))?;
    Ok(Json(OfferDocument {
        status: if stored.withdrawn_at.is_some() {
            "withdrawn"
        } else {
            "active"
        }
        .to_string(),
        withdrawn_at: stored.withdrawn_at,
        offer: stored.offer,
    }))
}

pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Offer>>, Problem> {
    check_id(&id)?;
    let versions = state
        .catalog
        .history(&id)
        .await
        .map_err(|e| Problem::unavailable("catalog unavailable", e.to_string()))?;
    if versions.is_empty() {
        return Err(Problem::not_found(format!("no offer {id}")));
    }
    Ok(Json(versions))
}
