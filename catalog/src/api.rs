//! The catalog's HTTP documents, shared by the broker (which serves them) and the SDK (which reads
//! them), so both sides cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::model::{CertifiedMetric, Location, Offer, Plan, ResourceClass, Resources};

/// One plan in a search page, with the offer fields a listing shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchItem {
    pub offer_id: String,
    pub version: u32,
    pub provider: String,
    pub name: String,
    pub classes: Vec<ResourceClass>,
    pub location: Location,
    pub resources: Resources,
    pub green_energy_percent: u8,
    pub certified_metrics: Vec<CertifiedMetric>,
    pub plan: Plan,
    /// The value the results are sorted by (ascending; negated for "highest first" sorts).
    pub sort_key: f64,
}

impl SearchItem {
    pub fn new(offer: &Offer, plan_index: usize, sort_key: f64) -> Self {
        Self {
            offer_id: offer.id.clone(),
            version: offer.version,
            provider: offer.provider.clone(),
            name: offer.name.clone(),
            classes: offer.classes(),
            location: offer.location.clone(),
            resources: offer.resources.clone(),
            green_energy_percent: offer.green_energy_percent,
            certified_metrics: offer.certified_metrics.clone(),
            plan: offer.plans[plan_index].clone(),
            sort_key,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    pub items: Vec<SearchItem>,
    pub total: usize,
    pub next_cursor: Option<String>,
}

/// An offer with its status: withdrawn offers stay readable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferDocument {
    pub status: String,
    pub withdrawn_at: Option<u64>,
    pub offer: Offer,
}

/// What a consumer asks to reserve (`POST /v1/reservations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReserveRequest {
    pub offer_id: String,
    pub plan_id: String,
    pub quantity: u32,
    /// Reserved plans: periods to escrow for (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periods: Option<u32>,
    /// Pay-per-use plans: the escrow deposit in credit base units (required); reserved plans:
    /// optional, at least the price of the periods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit: Option<u64>,
}
