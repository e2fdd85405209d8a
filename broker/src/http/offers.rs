//! Catalog reads: search, facets, one offer, its history. Public (browsing needs no login); every
//! write path comes with authentication in the marketplace flow.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use catalog::model::{Offer, Plan};
use catalog::params;
use catalog::query::Facets;
use serde::Serialize;

use super::problem::Problem;
use super::AppState;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchItem {
    pub offer_id: String,
    pub version: u32,
    pub provider: String,
    pub name: String,
    pub classes: Vec<catalog::ResourceClass>,
    pub location: catalog::model::Location,
    pub resources: catalog::model::Resources,
    pub green_energy_percent: u8,
    pub certified_metrics: Vec<catalog::model::CertifiedMetric>,
    pub plan: Plan,
    /// The value the results are sorted by (ascending; negated for "highest first" sorts).
    pub sort_key: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    pub items: Vec<SearchItem>,
    pub total: usize,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferDocument {
    pub status: &'static str,
    pub withdrawn_at: Option<u64>,
    pub offer: Offer,
}

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
            .map(|h| {
                let o: &Arc<Offer> = &h.offer;
                SearchItem {
                    offer_id: o.id.clone(),
                    version: o.version,
                    provider: o.provider.clone(),
                    name: o.name.clone(),
                    classes: o.classes(),
                    location: o.location.clone(),
                    resources: o.resources.clone(),
                    green_energy_percent: o.green_energy_percent,
                    certified_metrics: o.certified_metrics.clone(),
                    plan: h.plan().clone(),
                    sort_key: h.key,
                }
            })
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
        },
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
