//! The catalog over HTTP: search, facets, one offer, its history (public: browsing needs no
//! login), and publishing, updating and withdrawing (the offer's provider only).

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use catalog::api::{OfferDocument, SearchItem, SearchPage};
use catalog::model::Offer;
use catalog::params;
use catalog::query::Facets;

use axum::http::StatusCode;
use catalog::store::{CatalogStore, StoreError as CatalogError};
use serde_json::json;

use super::problem::Problem;
use super::{commit_with_events, require, AppState};
use crate::events::outbox::{Audience, Topic};
use crate::identity::{self as id, Principal, Role};
use crate::market::records::Pending;

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

/// Publishes a new offer or a new version of one. The body is the offer signed by its provider,
/// who must be the caller; the offer and its `offer.published`/`offer.updated` event commit
/// together.
pub async fn publish(
    State(state): State<AppState>,
    who: Principal,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    require(&who, &[Role::Provider], "publishing offers")?;
    let offer = catalog::validate::parse_offer(&body, true)
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    if offer.provider != who.did {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an offer names its provider; you can publish only your own offers",
        ));
    }
    let now = id::now();
    let mut tx = state.catalog.begin_write().await.map_err(catalog_problem)?;
    CatalogStore::publish_in(&mut tx, &offer, now)
        .await
        .map_err(catalog_problem)?;
    let topic = if offer.version == 1 {
        Topic::OfferPublished
    } else {
        Topic::OfferUpdated
    };
    let event = Pending {
        topic,
        subject: offer.id.clone(),
        audience: Audience::Everyone,
        payload: json!({"offer": offer.id, "version": offer.version, "provider": offer.provider}),
    };
    commit_with_events(&state, tx, vec![event], now).await?;
    let status = if offer.version == 1 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"id": offer.id, "version": offer.version})),
    ))
}

/// Withdraws an offer of the caller's.
pub async fn withdraw(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    require(&who, &[Role::Provider], "withdrawing offers")?;
    let now = id::now();
    let mut tx = state.catalog.begin_write().await.map_err(catalog_problem)?;
    let seq = CatalogStore::withdraw_in(&mut tx, &id, &who.did, now)
        .await
        .map_err(catalog_problem)?;
    let event = Pending {
        topic: Topic::OfferWithdrawn,
        subject: id.clone(),
        audience: Audience::Everyone,
        payload: json!({"offer": id, "provider": who.did}),
    };
    commit_with_events(&state, tx, vec![event], now).await?;
    Ok(Json(json!({"id": id, "withdrawn": true, "change": seq})))
}

fn catalog_problem(e: CatalogError) -> Problem {
    match e {
        CatalogError::NotOwner(_) => {
            Problem::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
        }
        CatalogError::NotFound(_) => Problem::not_found(e.to_string()),
        CatalogError::VersionConflict { .. }
        | CatalogError::NotFirstVersion { .. }
        | CatalogError::Withdrawn(_) => {
            Problem::new(StatusCode::CONFLICT, "conflict", e.to_string())
        }
        other => Problem::unavailable("database unavailable", other.to_string()),
    }
}
