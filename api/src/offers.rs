//! The catalog over HTTP: search pages, offers with their status, publishing and withdrawing.

use catalog::model::{CertifiedMetric, Location, Offer, Plan, ResourceClass, Resources};
use catalog::query::SortKey;
use identity::Did;
use serde::{Deserialize, Serialize};

use crate::ids::{IdError, OfferId, PlanId};

/// One plan in a search page, with the offer fields a listing shows.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchItem {
    pub offer_id: OfferId,
    pub version: u32,
    pub provider: Did,
    pub name: String,
    pub classes: Vec<ResourceClass>,
    pub location: Location,
    pub resources: Resources,
    pub green_energy_percent: u8,
    /// From the broker's valid, unrevoked credentials about the provider (each names its
    /// credential and issuer): what filters and ranking use.
    pub certified_metrics: Vec<CertifiedMetric>,
    /// The provider's own claims, self-declared: shown, never used to filter or rank.
    pub declared_metrics: Vec<CertifiedMetric>,
    /// Whether the broker verified the provider's agent at its configured endpoint.
    pub verified_provider: bool,
    /// The provider's reputation, 0-1, from its record (`/v1/providers/{did}/reputation`).
    pub reputation: f32,
    pub plan: Plan,
    /// The value the results are sorted by (ascending; negated for "highest first" sorts).
    pub sort_key: f64,
}

impl SearchItem {
    pub fn new(
        offer: &Offer,
        plan_index: usize,
        sort_key: f64,
        certified: Option<&catalog::index::Certification>,
        reputation: f32,
    ) -> Result<Self, IdError> {
        Ok(Self {
            offer_id: offer.id.parse()?,
            version: offer.version,
            provider: offer.provider.parse().map_err(|_| IdError {
                what: "a did:key",
                value: offer.provider.clone(),
            })?,
            name: offer.name.clone(),
            classes: offer.classes(),
            location: offer.location.clone(),
            resources: offer.resources.clone(),
            green_energy_percent: offer.green_energy_percent,
            certified_metrics: certified.map(|c| c.metrics.clone()).unwrap_or_default(),
            declared_metrics: offer.declared_metrics.clone(),
            verified_provider: certified.is_some_and(|c| c.verified),
            reputation,
            plan: offer.plans[plan_index].clone(),
            sort_key,
        })
    }

    pub fn plan_id(&self) -> Result<PlanId, IdError> {
        self.plan.id.parse()
    }
}

/// `GET /v1/offers`: one page of plans.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    pub items: Vec<SearchItem>,
    /// Plans matching the filters, on every page.
    pub total: usize,
    /// Pass as `cursor` for the next page; none on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OfferStatus {
    Active,
    Withdrawn,
}

/// An offer with its status: withdrawn offers stay readable.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferDocument {
    pub status: OfferStatus,
    pub withdrawn_at: Option<u64>,
    pub offer: Offer,
}

/// The answer to publishing an offer (201 for version 1, 200 for a new version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub id: OfferId,
    pub version: u32,
}

/// `POST /v1/offers/canonical`: the exact bytes a provider signs for an offer (its canonical
/// form, signature empty). The provider checks they say what it wrote before signing them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanonicalOffer {
    pub canonical: String,
}

/// The answer to withdrawing an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WithdrawnOffer {
    pub id: OfferId,
    /// The catalog change that withdrew it.
    pub change: u64,
}

/// The catalog's search parameters as the OpenAPI document lists them; the broker parses the
/// raw query with `catalog::params` (which also names what is wrong), and a test keeps the two
/// lists equal.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct SearchParams {
    /// Resource class the offer must have (repeatable, all must match).
    #[param(inline)]
    class: Option<Vec<ResourceClass>>,
    /// Provider did:key (repeatable, any).
    provider: Option<Vec<String>>,
    /// ISO country code (repeatable, any).
    #[param(max_length = 512)]
    country: Option<Vec<String>>,
    /// Region such as eu-west (repeatable, any).
    region: Option<Vec<String>>,
    /// GPU model such as nvidia-a100 (repeatable, any).
    gpu_model: Option<Vec<String>>,
    /// CPU architecture such as amd64 (repeatable, any).
    arch: Option<Vec<String>>,
    /// Words that must all appear in name, description, tags or dataset.
    q: Option<Vec<String>>,
    /// Minimum CPU per plan unit, millicores.
    #[param(minimum = 0)]
    min_cpu_millicores: Option<u64>,
    /// Minimum memory per plan unit, MiB.
    #[param(minimum = 0)]
    min_memory_mib: Option<u64>,
    /// Minimum memory per GPU, MiB.
    #[param(minimum = 0)]
    min_gpu_memory_mib: Option<u64>,
    /// Minimum GPU share per plan unit, thousandths of a GPU.
    #[param(minimum = 0, maximum = 4294967295u64)]
    min_gpu_permille: Option<u32>,
    /// Minimum bandwidth per plan unit, Mbit/s.
    #[param(minimum = 0)]
    min_bandwidth_mbps: Option<u64>,
    /// Maximum network latency, ms.
    max_latency_ms: Option<f64>,
    /// Maximum normalised price per unit-hour, credit base units.
    max_price: Option<f64>,
    /// Minimum green-energy share, percent.
    #[param(minimum = 0, maximum = 100)]
    min_green: Option<u8>,
    /// Maximum certified latency, ms.
    max_certified_latency_ms: Option<f64>,
    /// Minimum certified uptime, percent.
    min_certified_uptime: Option<f64>,
    /// Only providers the broker certified as answering at their configured endpoint.
    verified: Option<bool>,
    /// Only certified figures of this issuer (a did:key); none match for another issuer.
    certified_by: Option<String>,
    /// latitude,longitude,radiusKm.
    #[param(pattern = r"^-?[0-9.]+,-?[0-9.]+,[0-9.]+$")]
    near: Option<String>,
    /// Ranking (default price).
    #[param(inline)]
    sort: Option<SortKey>,
    /// Page size, 1-200 (default 20).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The nextCursor of the previous page.
    #[param(pattern = "^[0-9a-f]{32}$")]
    cursor: Option<String>,
}
