//! Catalog queries: filters on any attribute, a ranking, a stable tie-break and cursor pagination.
//! Pure data; the index (`index.rs`) and the SQL baseline (`store`) execute them.

use serde::{Deserialize, Serialize};

use crate::model::ResourceClass;

pub const MAX_LIMIT: usize = 200;
pub const DEFAULT_LIMIT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SortKey {
    /// Normalised price per unit-hour of the class asked for (or the plan's main class), cheapest first.
    #[default]
    Price,
    /// Certified latency, lowest first (plans without a certified latency last).
    Latency,
    /// Certified uptime, highest first.
    Uptime,
    /// Green-energy share, highest first.
    Green,
    /// Provider reputation, highest first.
    Reputation,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "price" => Some(Self::Price),
            "latency" => Some(Self::Latency),
            "uptime" => Some(Self::Uptime),
            "green" => Some(Self::Green),
            "reputation" => Some(Self::Reputation),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Price => "price",
            Self::Latency => "latency",
            Self::Uptime => "uptime",
            Self::Green => "green",
            Self::Reputation => "reputation",
        }
    }
}

/// A point and a radius.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Near {
    pub latitude: f64,
    pub longitude: f64,
    pub radius_km: f64,
}

/// Every filter is optional; set-valued filters match any of their values, `classes` and `text`
/// match all of theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Query {
    pub classes: Vec<ResourceClass>,
    pub providers: Vec<String>,
    pub countries: Vec<String>,
    pub regions: Vec<String>,
    pub gpu_models: Vec<String>,
    pub architectures: Vec<String>,
    /// Words that must all appear in the name, description, tags or dataset.
    pub text: Vec<String>,
    pub min_cpu_millicores: Option<u64>,
    pub min_memory_mib: Option<u64>,
    pub min_gpu_memory_mib: Option<u64>,
    pub min_gpu_permille: Option<u32>,
    pub min_bandwidth_mbps: Option<u64>,
    pub max_latency_ms: Option<f64>,
    /// Ceiling on the normalised price per unit-hour (base units).
    pub max_price: Option<f64>,
    pub min_green: Option<u8>,
    pub max_certified_latency_ms: Option<f64>,
    pub min_certified_uptime: Option<f64>,
    /// Only providers whose agent the broker verified at their configured endpoint.
    pub verified_only: bool,
    /// Only figures certified by these issuers (dids; any of them).
    pub certified_by: Vec<String>,
    pub near: Option<Near>,
    pub sort: SortKey,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            classes: Vec::new(),
            providers: Vec::new(),
            countries: Vec::new(),
            regions: Vec::new(),
            gpu_models: Vec::new(),
            architectures: Vec::new(),
            text: Vec::new(),
            min_cpu_millicores: None,
            min_memory_mib: None,
            min_gpu_memory_mib: None,
            min_gpu_permille: None,
            min_bandwidth_mbps: None,
            max_latency_ms: None,
            max_price: None,
            min_green: None,
            max_certified_latency_ms: None,
            min_certified_uptime: None,
            verified_only: false,
            certified_by: Vec::new(),
            near: None,
            sort: SortKey::Price,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// Where the previous page ended: the sort key and the tie-break of its last row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    pub key: f64,
    pub tiebreak: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{:016x}{:016x}", self.key.to_bits(), self.tiebreak)
    }

    pub fn decode(s: &str) -> Option<Self> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let key = f64::from_bits(u64::from_str_radix(&s[..16], 16).ok()?);
        let tiebreak = u64::from_str_radix(&s[16..], 16).ok()?;
        (!key.is_nan()).then_some(Self { key, tiebreak })
    }
}

/// The class whose normalised price ranks and filters: the first class asked for, else the plan's.
pub fn price_class(q: &Query) -> Option<ResourceClass> {
    q.classes.first().copied()
}

/// Lower-case alphanumeric words, the unit of text search.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// A stable 64-bit tie-break for a plan (FNV-1a of "offer/plan").
pub fn tiebreak(offer_id: &str, plan_id: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in offer_id.bytes().chain([b'/']).chain(plan_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Great-circle distance in km.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().asin()
}

/// Price buckets for facets (base units per unit-hour): upper bounds, the last is open.
pub const PRICE_BUCKETS: [f64; 6] = [1e6, 1e7, 5e7, 1e8, 1e9, f64::INFINITY];

/// Plans matching a query, counted per value of a facet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Facets {
    pub total: usize,
    pub classes: Vec<FacetCount>,
    pub regions: Vec<FacetCount>,
    pub gpu_models: Vec<FacetCount>,
    /// Upper bounds of price buckets (base units per unit-hour); the last bound is "inf".
    pub price_buckets: Vec<FacetCount>,
}

/// One value of a facet and how many plans have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FacetCount {
    pub value: String,
    pub count: usize,
}

impl FacetCount {
    pub fn new(value: impl Into<String>, count: usize) -> Self {
        Self {
            value: value.into(),
            count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            key: 12.5,
            tiebreak: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("nope"), None);
        assert_eq!(Cursor::decode(&"g".repeat(32)), None);
    }

    #[test]
    fn distances_are_great_circle() {
        let d = distance_km(48.8566, 2.3522, 50.1109, 8.6821);
        assert!((d - 479.0).abs() < 5.0, "{d}");
    }
}
