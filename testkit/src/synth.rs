//! A realistic synthetic catalog for tests and the benchmark: skewed (Zipf-like) distributions of
//! classes, regions, GPU models and prices, signed by a pool of providers.

use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use catalog::fluidos::FluidosDetails;
use catalog::model::*;
use identity::did_of;

/// (region, country, city, latitude, longitude), most popular first.
pub const REGIONS: &[(&str, &str, &str, f64, f64)] = &[
    ("eu-west", "FR", "Paris", 48.8566, 2.3522),
    ("eu-central", "DE", "Frankfurt", 50.1109, 8.6821),
    ("us-east", "US", "Ashburn", 39.0438, -77.4874),
    ("eu-south", "IT", "Turin", 45.0703, 7.6869),
    ("us-west", "US", "San Jose", 37.3382, -121.8863),
    ("eu-north", "SE", "Stockholm", 59.3293, 18.0686),
    ("ap-south", "IN", "Mumbai", 19.0760, 72.8777),
    ("ap-east", "JP", "Tokyo", 35.6762, 139.6503),
    ("sa-east", "BR", "Sao Paulo", -23.5505, -46.6333),
    ("af-south", "ZA", "Cape Town", -33.9249, 18.4241),
];

/// (vendor, model, memory MiB), most common first.
pub const GPU_MODELS: &[(&str, &str, u64)] = &[
    ("nvidia", "nvidia-t4", 16 * 1024),
    ("nvidia", "nvidia-a10", 24 * 1024),
    ("nvidia", "nvidia-l4", 24 * 1024),
    ("nvidia", "nvidia-a100", 40 * 1024),
    ("nvidia", "nvidia-a100-80gb", 80 * 1024),
    ("nvidia", "nvidia-h100", 80 * 1024),
    ("amd", "amd-mi250", 128 * 1024),
    ("nvidia", "nvidia-h200", 141 * 1024),
];

const WORDS: &[&str] = &[
    "fast",
    "edge",
    "secure",
    "green",
    "low-latency",
    "batch",
    "ml",
    "training",
    "inference",
    "storage",
    "analytics",
    "iot",
    "video",
    "genomics",
    "satellite",
    "weather",
    "traffic",
    "energy",
    "retail",
    "health",
    "finance",
    "robotics",
    "5g",
    "lidar",
    "sensor",
];

/// Index drawn with probability ∝ 1/(i+1)^s.
pub fn zipf(rng: &mut impl Rng, n: usize, s: f64) -> usize {
    let weights: Vec<f64> = (0..n).map(|i| 1.0 / ((i + 1) as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut x = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    n - 1
}

pub struct Generator {
    rng: StdRng,
    pub providers: Vec<SigningKey>,
    dids: Vec<String>,
    sign: bool,
}

impl Generator {
    pub fn new(seed: u64, providers: usize, sign: bool) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let providers: Vec<SigningKey> = (0..providers)
            .map(|_| SigningKey::generate(&mut rng))
            .collect();
        let dids = providers
            .iter()
            .map(|k| did_of(&k.verifying_key()).to_string())
            .collect();
        Self {
            rng,
            providers,
            dids,
            sign,
        }
    }

    pub fn did(&self, provider: usize) -> &str {
        &self.dids[provider]
    }

    /// One offer with `plans` plans; the class mix is skewed towards compute.
    pub fn offer(&mut self, id: &str, plans: usize) -> Offer {
        let rng = &mut self.rng;
        let provider = zipf(rng, self.providers.len(), 0.8);
        let (region, country, city, lat, lon) = REGIONS[zipf(rng, REGIONS.len(), 1.0)];
        let kind = rng.gen_range(0..100);
        let mut resources = Resources::default();
        // 55% compute, 20% GPU node (compute + GPU + network), 15% network, 10% data.
        if kind < 75 {
            let cores = [2u64, 4, 8, 16, 32, 64, 128][zipf(rng, 7, 0.9)];
            resources.compute = Some(Compute {
                architecture: if rng.gen_bool(0.8) { "amd64" } else { "arm64" }.into(),
                cpu_millicores: cores * 1000 * plans as u64,
                memory_mib: cores * 4096 * plans as u64,
                storage_gib: cores * 50 * plans as u64,
                pods: 110,
            });
        }
        if (55..75).contains(&kind) {
            let (vendor, model, mem) = GPU_MODELS[zipf(rng, GPU_MODELS.len(), 1.1)];
            resources.gpu = Some(Gpu {
                vendor: vendor.into(),
                model: model.into(),
                share: GpuShare::Whole {
                    count: plans as u32 * [1u32, 2, 4, 8][zipf(rng, 4, 1.2)],
                },
                memory_mib: mem,
                compute_capability: "8.0".into(),
                cores: 0,
            });
        }
        if (55..90).contains(&kind) {
            resources.network = Some(Network {
                bandwidth_mbps: [100u64, 1000, 10_000][zipf(rng, 3, 1.0)] * plans as u64,
                latency_ms: rng.gen_range(1.0..80.0),
                jitter_ms: rng.gen_range(0.0..5.0),
                endpoints: vec![format!("{city}.edge.example:443")
                    .to_lowercase()
                    .replace(' ', "-")],
                service_level: if rng.gen_bool(0.5) {
                    NetworkServiceLevel::Guaranteed
                } else {
                    NetworkServiceLevel::BestEffort
                },
            });
        }
        if kind >= 90 {
            let topic = WORDS[zipf(rng, WORDS.len(), 0.7)];
            resources.data = Some(Data {
                dataset: format!("{topic} dataset {id}"),
                descriptor: format!("{topic} records collected in {city}"),
                schema: None,
                size_bytes: rng.gen_range(1u64 << 20..1u64 << 40),
                licence: ["CC-BY-4.0", "ODbL-1.0", "proprietary"][zipf(rng, 3, 1.0)].into(),
                access_endpoint: format!("https://data.example/{id}"),
            });
        }
        let classes = resources.classes();
        let main = classes[0];
        // Log-normal-ish base price per normalised unit-hour.
        let base = (rng.gen::<f64>() * 4.0).exp() * 1e6;
        // Each plan sells an equal share of the offer (capacity 1 each).
        let n = plans as u64;
        let plans: Vec<Plan> = (0..plans)
            .map(|i| {
                let unit = PlanUnit {
                    cpu_millicores: resources
                        .compute
                        .as_ref()
                        .map_or(0, |c| c.cpu_millicores / n),
                    memory_mib: resources.compute.as_ref().map_or(0, |c| c.memory_mib / n),
                    storage_gib: 0,
                    gpu_permille: resources.gpu.as_ref().map_or(0, |g| match g.share {
                        GpuShare::Whole { count } => 1000 * count / n as u32,
                        GpuShare::TimeSliced { permille } => u32::from(permille),
                    }),
                    bandwidth_mbps: resources
                        .network
                        .as_ref()
                        .map_or(0, |x| x.bandwidth_mbps / n),
                    data_accesses: if resources.data.is_some() { 1000 } else { 0 },
                };
                let size = match main {
                    ResourceClass::Compute => unit.cpu_millicores as f64 / 1000.0,
                    ResourceClass::Gpu => f64::from(unit.gpu_permille) / 1000.0,
                    ResourceClass::Network => unit.bandwidth_mbps as f64 / 1000.0,
                    ResourceClass::Data => 1.0,
                };
                let hourly = base * size.max(0.1) * (1.0 + 0.1 * i as f64);
                let reserved = rng.gen_bool(0.8).then_some(ReservedPrice {
                    price: credits(hourly * 720.0),
                    period_seconds: 30 * 86_400,
                });
                let pay_per_use = (reserved.is_none() || rng.gen_bool(0.3)).then_some(UnitPrices {
                    cpu_core_hour: credits(base * 1.2),
                    memory_gib_hour: credits(base * 0.1),
                    gpu_hour: credits(base * 20.0),
                    network_gb: credits(base * 0.05),
                    storage_gib_month: credits(base * 0.02),
                    data_access: credits(base * 0.01),
                    free_network_gb: 0,
                });
                Plan {
                    id: format!("p{i}"),
                    name: format!("{} x{}", main.as_str(), i + 1),
                    pricing: Pricing {
                        reserved,
                        pay_per_use,
                    },
                    capacity: 1,
                    unit,
                }
            })
            .collect();
        let words: Vec<&str> = (0..3).map(|_| WORDS[zipf(rng, WORDS.len(), 0.7)]).collect();
        let mut offer = Offer {
            id: id.to_string(),
            version: 1,
            provider: self.dids[provider].clone(),
            name: format!("{} {} in {city}", words[0], main.as_str()),
            description: format!(
                "{} {} {} resources operated in {city}",
                words[0], words[1], words[2]
            ),
            tags: words
                .iter()
                .map(|w| w.to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            location: Location {
                country: country.into(),
                region: region.into(),
                city: city.into(),
                latitude: lat + rng.gen_range(-0.5..0.5),
                longitude: lon + rng.gen_range(-0.5..0.5),
                notes: String::new(),
            },
            resources,
            plans,
            green_energy_percent: [0u8, 20, 40, 60, 80, 100][zipf(rng, 6, 0.5)],
            availability: AvailabilityWindow::default(),
            partitionability: None,
            declared_metrics: if rng.gen_bool(0.4) {
                vec![
                    CertifiedMetric {
                        kind: MetricKind::LatencyMs,
                        value: rng.gen_range(1.0..100.0),
                        issuer: "did:key:broker".into(),
                        credential: "0xabc".into(),
                        valid_until: None,
                    },
                    CertifiedMetric {
                        kind: MetricKind::UptimePercent,
                        value: rng.gen_range(95.0..100.0),
                        issuer: "did:key:broker".into(),
                        credential: "0xdef".into(),
                        valid_until: None,
                    },
                ]
            } else {
                Vec::new()
            },
            fluidos: FluidosDetails::default(),
            signature: String::new(),
        };
        if self.sign {
            offer.sign(&self.providers[provider]);
        }
        offer
    }
}

/// A generated price: whole base units.
fn credits(base_units: f64) -> Credits {
    Credits::from_base_units(base_units as u128)
}

/// The issuer synthetic certifications name.
pub const SYNTH_ISSUER: &str = "did:key:z6MkSynthBroker";

/// What a broker certified about `provider`, fixed by the provider's name: 40% have certified
/// latency and uptime, half of those are verified providers.
pub fn certification(provider: &str) -> Option<catalog::index::Certification> {
    let seed = provider.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = StdRng::seed_from_u64(seed);
    rng.gen_bool(0.4).then(|| catalog::index::Certification {
        issuer: SYNTH_ISSUER.into(),
        latency_ms: Some(rng.gen_range(1.0..100.0)),
        uptime_percent: Some(rng.gen_range(95.0..100.0)),
        verified: rng.gen_bool(0.5),
        metrics: Vec::new(),
    })
}

/// Gives the index the synthetic certification of every provider it holds offers of.
pub fn certify_all<'a>(index: &mut catalog::Index, providers: impl IntoIterator<Item = &'a str>) {
    let mut seen = std::collections::HashSet::new();
    for p in providers {
        if seen.insert(p) {
            index.set_certification(p, certification(p));
        }
    }
}
