//! The offer and plan model. An offer belongs to one provider, describes resources of one or more
//! classes (compute, GPU, network, data) at one location, and sells them through plans. Offers are
//! signed by their provider over their canonical form, so the catalog cannot alter them unnoticed.

use serde::{Deserialize, Serialize};

use crate::fluidos::FluidosDetails;

pub use crate::money::Credits;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Offer {
    /// Chosen by the provider, unique in the catalog: 1–64 of `[A-Za-z0-9._-]`.
    pub id: String,
    /// 1 for a new offer; each update is the previous version + 1.
    pub version: u32,
    /// The provider's `did:key`; its key signs the offer.
    pub provider: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub location: Location,
    pub resources: Resources,
    pub plans: Vec<Plan>,
    /// Share of the provider's energy that is green, 0–100 (drives the green reward).
    #[serde(default)]
    pub green_energy_percent: u8,
    #[serde(default)]
    pub availability: AvailabilityWindow,
    /// How the resources may be split when sold (FLUIDOS partitionability: minimum and step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitionability: Option<Partitionability>,
    /// The provider's own claims about its metrics: shown as self-declared, never used to
    /// filter or rank (certified figures come from the broker's credentials).
    #[serde(default, alias = "certifiedMetrics")]
    pub declared_metrics: Vec<CertifiedMetric>,
    /// FLUIDOS REAR flavor fields with no Mercato equivalent, kept so conversions lose nothing.
    #[serde(default, skip_serializing_if = "FluidosDetails::is_empty")]
    #[schema(value_type = Option<Object>)]
    pub fluidos: FluidosDetails,
    /// Hex Ed25519 signature of the provider over `canonical_bytes()` (empty while unsigned).
    #[serde(default)]
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// Marketplace region, e.g. `eu-west`.
    pub region: String,
    #[serde(default)]
    pub city: String,
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

/// What the offer provides; at least one class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<Compute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Gpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ResourceClass {
    Compute,
    Gpu,
    Network,
    Data,
}

impl ResourceClass {
    pub const ALL: [ResourceClass; 4] = [Self::Compute, Self::Gpu, Self::Network, Self::Data];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compute => "compute",
            Self::Gpu => "gpu",
            Self::Network => "network",
            Self::Data => "data",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl Resources {
    pub fn classes(&self) -> Vec<ResourceClass> {
        let mut out = Vec::new();
        if self.compute.is_some() {
            out.push(ResourceClass::Compute);
        }
        if self.gpu.is_some() {
            out.push(ResourceClass::Gpu);
        }
        if self.network.is_some() {
            out.push(ResourceClass::Network);
        }
        if self.data.is_some() {
            out.push(ResourceClass::Data);
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Compute {
    /// `amd64`, `arm64`, …
    pub architecture: String,
    pub cpu_millicores: u64,
    pub memory_mib: u64,
    #[serde(default)]
    pub storage_gib: u64,
    #[serde(default)]
    pub pods: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gpu {
    pub vendor: String,
    pub model: String,
    pub share: GpuShare,
    /// Memory of one GPU.
    pub memory_mib: u64,
    #[serde(default)]
    pub compute_capability: String,
    #[serde(default)]
    pub cores: u32,
}

/// Whole GPUs, or a time-sliced fraction of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", tag = "mode", deny_unknown_fields)]
pub enum GpuShare {
    Whole { count: u32 },
    TimeSliced { permille: u16 },
}

impl GpuShare {
    /// GPUs as a real number (a 250‰ slice is 0.25).
    pub fn gpus(self) -> f64 {
        match self {
            Self::Whole { count } => f64::from(count),
            Self::TimeSliced { permille } => f64::from(permille) / 1000.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Network {
    pub bandwidth_mbps: u64,
    pub latency_ms: f64,
    #[serde(default)]
    pub jitter_ms: f64,
    #[serde(default)]
    pub endpoints: Vec<String>,
    pub service_level: NetworkServiceLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkServiceLevel {
    /// A reserved slice with the stated bandwidth and latency.
    Guaranteed,
    BestEffort,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Data {
    pub dataset: String,
    #[serde(default)]
    pub descriptor: String,
    /// JSON Schema of a record, when the dataset has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    pub size_bytes: u64,
    pub licence: String,
    pub access_endpoint: String,
}

/// A way to buy the offer: its price, what one unit of it gives, and how many units can be sold
/// at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    /// Unique within the offer: 1–64 of `[A-Za-z0-9._-]`.
    pub id: String,
    pub name: String,
    pub pricing: Pricing,
    /// Units of this plan that can be sold at the same time (at least 1).
    pub capacity: u32,
    /// What one unit gives.
    pub unit: PlanUnit,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanUnit {
    #[serde(default)]
    pub cpu_millicores: u64,
    #[serde(default)]
    pub memory_mib: u64,
    #[serde(default)]
    pub storage_gib: u64,
    /// GPU share in thousandths of a GPU (1000 = one whole GPU).
    #[serde(default)]
    pub gpu_permille: u32,
    #[serde(default)]
    pub bandwidth_mbps: u64,
    /// Dataset accesses included per period (data plans).
    #[serde(default)]
    pub data_accesses: u64,
}

/// Reserved (a price per period, paid in advance) and/or pay-per-use unit prices; at least one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pricing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<ReservedPrice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_per_use: Option<UnitPrices>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservedPrice {
    pub price: Credits,
    pub period_seconds: u64,
}

/// Pay-per-use prices per resource unit, in credit base units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitPrices {
    #[serde(default)]
    pub cpu_core_hour: Credits,
    #[serde(default)]
    pub memory_gib_hour: Credits,
    #[serde(default)]
    pub gpu_hour: Credits,
    #[serde(default)]
    pub network_gb: Credits,
    #[serde(default)]
    pub storage_gib_month: Credits,
    #[serde(default)]
    pub data_access: Credits,
    /// Traffic (both ways, whole contract) included before `network_gb` applies.
    #[serde(default)]
    pub free_network_gb: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AvailabilityWindow {
    /// Unix seconds; none = from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// Unix seconds; none = open-ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

/// FLUIDOS partitionability policy: the smallest piece and the step above it, per resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Partitionability {
    pub cpu_min_millicores: u64,
    pub memory_min_mib: u64,
    pub pods_min: u64,
    pub gpu_min_permille: u64,
    pub cpu_step_millicores: u64,
    pub memory_step_mib: u64,
    pub pods_step: u64,
    pub gpu_step_permille: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MetricKind {
    LatencyMs,
    UptimePercent,
    BenchmarkScore,
    GpuPresent,
}

/// A metric with the credential that backs it: certified when it comes from a valid credential
/// of a trusted issuer, self-declared when a provider wrote it in its offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertifiedMetric {
    pub kind: MetricKind,
    pub value: f64,
    pub issuer: String,
    /// Hash of the verifiable credential (as anchored on chain).
    pub credential: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<u64>,
}

impl Offer {
    /// The bytes the provider signs: the offer as JSON with an empty signature. Field order is the
    /// struct's, maps are sorted (serde_json's default map is a BTreeMap), so it is deterministic.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature.clear();
        serde_json::to_vec(&unsigned).expect("an offer serialises")
    }

    pub fn sign(&mut self, key: &ed25519_dalek::SigningKey) {
        self.signature = identity::sign_hex(key, identity::Domain::Offer, &self.canonical_bytes());
    }

    pub fn classes(&self) -> Vec<ResourceClass> {
        self.resources.classes()
    }

    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }
}

impl Plan {
    /// Reserved price per hour, in base units, when the plan has one.
    pub fn hourly_price(&self) -> Option<f64> {
        self.pricing
            .reserved
            .as_ref()
            .map(|r| r.price.as_f64() * 3600.0 / r.period_seconds as f64)
    }

    /// The reserved hourly price per unit of the plan's main resource, so plans of different sizes
    /// compare: per core (compute), per GPU (GPU), per Gbps (network), per access (data). Falls back
    /// to pay-per-use unit prices for plans with no reserved price.
    pub fn normalized_price(&self, class: ResourceClass) -> f64 {
        let u = &self.unit;
        let size = match class {
            ResourceClass::Compute => u.cpu_millicores as f64 / 1000.0,
            ResourceClass::Gpu => f64::from(u.gpu_permille) / 1000.0,
            ResourceClass::Network => u.bandwidth_mbps as f64 / 1000.0,
            ResourceClass::Data => u.data_accesses as f64,
        };
        match (self.hourly_price(), &self.pricing.pay_per_use) {
            (Some(hourly), _) if size > 0.0 => hourly / size,
            (Some(hourly), _) => hourly,
            (None, Some(p)) => match class {
                ResourceClass::Compute => p.cpu_core_hour.as_f64(),
                ResourceClass::Gpu => p.gpu_hour.as_f64(),
                ResourceClass::Network => p.network_gb.as_f64(),
                ResourceClass::Data => p.data_access.as_f64(),
            },
            (None, None) => f64::INFINITY,
        }
    }
}
