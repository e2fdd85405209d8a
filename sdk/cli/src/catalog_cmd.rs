//! The catalog commands: search, facets, show, publish, withdraw.

use std::path::PathBuf;

use anyhow::{Context, Result};
use api::{Credits, OfferId};
use catalog::{ResourceClass, SortKey};
use clap::{Subcommand, ValueEnum};
use comfy_table::Table;

use crate::output::{self, credits};
use crate::{parse_credits, Ctx};

#[derive(Subcommand)]
pub enum OffersCommand {
    /// Search plans: filters, ranking, pages (see `--help` for every filter).
    Search(Box<SearchArgs>),
    /// Counts per class, region, GPU model and price bucket for the filters.
    Facets(Box<SearchArgs>),
    /// Show one offer (also withdrawn ones).
    Show { id: OfferId },
    /// Every version of an offer, oldest first.
    History { id: OfferId },
    /// Publish an offer (YAML or JSON) as this provider's, signed; an existing id gets a new
    /// version.
    Publish { file: PathBuf },
    /// Withdraw one of this provider's offers.
    Withdraw { id: OfferId },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Class {
    Compute,
    Gpu,
    Network,
    Data,
}

impl From<Class> for ResourceClass {
    fn from(c: Class) -> Self {
        match c {
            Class::Compute => ResourceClass::Compute,
            Class::Gpu => ResourceClass::Gpu,
            Class::Network => ResourceClass::Network,
            Class::Data => ResourceClass::Data,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Sort {
    Price,
    Latency,
    Uptime,
    Green,
    Reputation,
}

impl From<Sort> for SortKey {
    fn from(s: Sort) -> Self {
        match s {
            Sort::Price => SortKey::Price,
            Sort::Latency => SortKey::Latency,
            Sort::Uptime => SortKey::Uptime,
            Sort::Green => SortKey::Green,
            Sort::Reputation => SortKey::Reputation,
        }
    }
}

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Resource class the offer must have (repeatable, all must match).
    #[arg(long = "class", value_enum)]
    classes: Vec<Class>,
    /// Region (repeatable, any).
    #[arg(long = "region")]
    regions: Vec<String>,
    /// ISO country code (repeatable, any).
    #[arg(long = "country")]
    countries: Vec<String>,
    /// GPU model (repeatable, any).
    #[arg(long = "gpu-model")]
    gpu_models: Vec<String>,
    /// Provider did:key (repeatable, any).
    #[arg(long = "provider")]
    providers: Vec<String>,
    /// CPU architecture (repeatable, any).
    #[arg(long = "arch")]
    architectures: Vec<String>,
    /// Words that must all appear in name, description, tags or dataset.
    #[arg(long = "text")]
    text: Vec<String>,
    /// Minimum CPU cores per plan unit.
    #[arg(long)]
    min_cpu: Option<f64>,
    /// Minimum memory per plan unit, GiB.
    #[arg(long)]
    min_memory_gib: Option<u64>,
    /// Minimum memory per GPU, GiB.
    #[arg(long)]
    min_gpu_memory_gib: Option<u64>,
    /// Minimum network bandwidth, Mbit/s.
    #[arg(long)]
    min_bandwidth_mbps: Option<u64>,
    /// Maximum declared latency, milliseconds.
    #[arg(long)]
    max_latency_ms: Option<f64>,
    /// Maximum normalised price per unit-hour, in credits (12.5).
    #[arg(long, value_parser = parse_credits)]
    max_price: Option<Credits>,
    /// Minimum share of renewable energy, percent.
    #[arg(long)]
    min_green: Option<u8>,
    /// Maximum latency certified by a metric credential, milliseconds.
    #[arg(long)]
    max_certified_latency_ms: Option<f64>,
    /// Minimum uptime certified by a metric credential, percent (99.9).
    #[arg(long)]
    min_certified_uptime: Option<f64>,
    /// Only providers whose agent the broker verified at their configured endpoint.
    #[arg(long)]
    verified: bool,
    /// Only figures certified by this issuer (did; repeatable, any).
    #[arg(long = "certified-by")]
    certified_by: Vec<String>,
    /// Within a distance: latitude,longitude,radiusKm.
    #[arg(long)]
    near: Option<String>,
    /// Ranking.
    #[arg(long, value_enum, default_value = "price")]
    sort: Sort,
    /// Page size (1-200).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// The cursor printed after the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

impl SearchArgs {
    /// Goes through the same parameter parser as the broker, so errors read the same.
    fn query(&self) -> Result<catalog::Query> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        pairs.extend(
            self.classes
                .iter()
                .map(|c| ("class", ResourceClass::from(*c).as_str().to_string())),
        );
        pairs.extend(self.regions.iter().map(|v| ("region", v.clone())));
        pairs.extend(self.countries.iter().map(|v| ("country", v.clone())));
        pairs.extend(self.gpu_models.iter().map(|v| ("gpuModel", v.clone())));
        pairs.extend(self.providers.iter().map(|v| ("provider", v.clone())));
        pairs.extend(self.architectures.iter().map(|v| ("arch", v.clone())));
        pairs.extend(self.text.iter().map(|v| ("q", v.clone())));
        let mut opt = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                pairs.push((k, v));
            }
        };
        opt(
            "minCpuMillicores",
            self.min_cpu
                .map(|c| ((c * 1000.0).round() as u64).to_string()),
        );
        opt(
            "minMemoryMib",
            self.min_memory_gib.map(|g| (g * 1024).to_string()),
        );
        opt(
            "minGpuMemoryMib",
            self.min_gpu_memory_gib.map(|g| (g * 1024).to_string()),
        );
        opt(
            "minBandwidthMbps",
            self.min_bandwidth_mbps.map(|v| v.to_string()),
        );
        opt("maxLatencyMs", self.max_latency_ms.map(|v| v.to_string()));
        opt("maxPrice", self.max_price.map(|c| c.to_string()));
        opt("minGreen", self.min_green.map(|v| v.to_string()));
        opt(
            "maxCertifiedLatencyMs",
            self.max_certified_latency_ms.map(|v| v.to_string()),
        );
        opt(
            "minCertifiedUptime",
            self.min_certified_uptime.map(|v| v.to_string()),
        );
        opt("verified", self.verified.then(|| "true".to_string()));
        for d in &self.certified_by {
            opt("certifiedBy", Some(d.clone()));
        }
        opt("near", self.near.clone());
        opt("sort", Some(SortKey::from(self.sort).as_str().to_string()));
        opt("limit", Some(self.limit.to_string()));
        opt("cursor", self.cursor.clone());
        catalog::params::parse(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .map_err(|e| anyhow::anyhow!("{e}; see `mercato offers search --help`"))
    }
}

pub async fn offers(ctx: &Ctx, cmd: OffersCommand) -> Result<()> {
    match cmd {
        OffersCommand::Search(args) => search(ctx, &args).await,
        OffersCommand::Facets(args) => facets(ctx, &args).await,
        OffersCommand::Show { id } => show(ctx, &id).await,
        OffersCommand::History { id } => history(ctx, &id).await,
        OffersCommand::Publish { file } => publish(ctx, &file).await,
        OffersCommand::Withdraw { id } => withdraw(ctx, &id).await,
    }
}

async fn search(ctx: &Ctx, args: &SearchArgs) -> Result<()> {
    let q = args.query()?;
    let page = ctx.client.search_offers(&q).await?;
    ctx.out.emit(&page, |page| {
        let mut table = Table::new();
        table.set_header([
            "offer",
            "plan",
            "classes",
            "region",
            "cpu",
            "mem GiB",
            "gpu",
            "price/h",
            "green %",
            "certified",
            "rep.",
        ]);
        for item in &page.items {
            let u = &item.plan.unit;
            let classes: Vec<&str> = item.classes.iter().map(|c| c.as_str()).collect();
            let gpu = item.resources.gpu.as_ref().map_or("-".to_string(), |g| {
                format!("{} x{}", g.model, f64::from(u.gpu_permille) / 1000.0)
            });
            let main = q
                .classes
                .first()
                .copied()
                .or(item.classes.first().copied())
                .unwrap_or(ResourceClass::Compute);
            let price = item.plan.normalized_price(main);
            table.add_row([
                item.offer_id.to_string(),
                item.plan.id.clone(),
                classes.join(","),
                item.location.region.clone(),
                format!("{}", u.cpu_millicores as f64 / 1000.0),
                format!("{:.1}", u.memory_mib as f64 / 1024.0),
                gpu,
                if price.is_finite() {
                    Credits::from_base_units(price.round() as u128).human()
                } else {
                    "-".into()
                },
                item.green_energy_percent.to_string(),
                certified(item),
                format!("{:.2}", item.reputation),
            ]);
        }
        let mut text = format!("{table}\n{} of {} plans", page.items.len(), page.total);
        if let Some(c) = &page.next_cursor {
            text.push_str(&format!("\nnext page: --cursor {c}"));
        }
        text
    })
}

/// The certified figures of a listing (from credentials), `-` when none; verified providers
/// are marked ✓.
fn certified(item: &api::offers::SearchItem) -> String {
    let mut parts: Vec<String> = item
        .certified_metrics
        .iter()
        .filter_map(|m| match m.kind {
            catalog::model::MetricKind::LatencyMs => Some(format!("{:.2} ms", m.value)),
            catalog::model::MetricKind::UptimePercent => Some(format!("{:.2}% up", m.value)),
            _ => None,
        })
        .collect();
    if item.verified_provider {
        parts.insert(0, "✓".into());
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

async fn facets(ctx: &Ctx, args: &SearchArgs) -> Result<()> {
    let facets = ctx.client.offer_facets(&args.query()?).await?;
    ctx.out.emit(&facets, |f| {
        let mut table = Table::new();
        table.set_header(["facet", "value", "plans"]);
        for (facet, rows) in [
            ("class", &f.classes),
            ("region", &f.regions),
            ("gpu model", &f.gpu_models),
            ("price ≤ (base units/h)", &f.price_buckets),
        ] {
            for row in rows {
                table.add_row([facet.to_string(), row.value.clone(), row.count.to_string()]);
            }
        }
        format!("{table}\n{} plans match", f.total)
    })
}

fn offer_table(o: &catalog::Offer) -> String {
    let mut plans = Table::new();
    plans.set_header(["plan", "capacity", "reserved", "pay per use (cpu core-h)"]);
    for p in &o.plans {
        plans.add_row([
            p.id.clone(),
            p.capacity.to_string(),
            p.pricing.reserved.as_ref().map_or("-".into(), |r| {
                format!("{} / {} s", credits(r.price), r.period_seconds)
            }),
            p.pricing
                .pay_per_use
                .as_ref()
                .map_or("-".into(), |u| credits(u.cpu_core_hour)),
        ]);
    }
    format!(
        "{}\n{plans}",
        output::fields([
            ("offer", o.id.clone()),
            ("version", o.version.to_string()),
            ("name", o.name.clone()),
            ("provider", o.provider.clone()),
            (
                "region",
                format!("{} ({})", o.location.region, o.location.country)
            ),
            ("green energy", format!("{} %", o.green_energy_percent)),
        ])
    )
}

async fn show(ctx: &Ctx, id: &OfferId) -> Result<()> {
    let doc = ctx.client.offer(id).await?;
    ctx.out.emit(&doc, |d| {
        format!(
            "{}\nstatus: {}",
            offer_table(&d.offer),
            serde_json::to_value(d.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        )
    })
}

async fn history(ctx: &Ctx, id: &OfferId) -> Result<()> {
    let versions = ctx.client.offer_history(id).await?;
    ctx.out.emit(&versions, |vs| {
        vs.iter().map(offer_table).collect::<Vec<_>>().join("\n")
    })
}

/// Reads YAML or JSON into `T`.
pub fn read_document<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a valid document", path.display()))
}

/// An offer file: YAML or JSON. Amounts may be written as credits (`0.5 credits`) or as base
/// units; the provider (the session's did) and the version (the next) may be left out.
pub fn read_offer(path: &std::path::Path) -> Result<catalog::Offer> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut value: serde_yaml::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
    credits_to_base_units(&mut value, &mut Vec::new())
        .with_context(|| format!("{} has an amount that is not one", path.display()))?;
    if let serde_yaml::Value::Mapping(m) = &mut value {
        for (key, filled) in [
            ("provider", serde_yaml::Value::from("")),
            ("version", serde_yaml::Value::from(1)),
        ] {
            let key = serde_yaml::Value::from(key);
            if !m.contains_key(&key) {
                m.insert(key, filled);
            }
        }
    }
    serde_yaml::from_value(value)
        .with_context(|| format!("{} is not a valid offer", path.display()))
}

/// Rewrites every string `<amount> credits` in `value` as base units (`0.5 credits` →
/// `"50000000"`), naming the field of one that is not an amount of credits.
fn credits_to_base_units(value: &mut serde_yaml::Value, at: &mut Vec<String>) -> Result<()> {
    match value {
        serde_yaml::Value::String(s) => {
            let text = s.trim();
            if let Some(amount) = text
                .strip_suffix("credits")
                .or_else(|| text.strip_suffix("credit"))
            {
                let c = Credits::parse_human(amount.trim())
                    .with_context(|| format!("{}: {text:?}", at.join(".")))?;
                *s = c.base_units().to_string();
            }
        }
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                at.push(k.as_str().unwrap_or("?").to_string());
                credits_to_base_units(v, at)?;
                at.pop();
            }
        }
        serde_yaml::Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                at.push(i.to_string());
                credits_to_base_units(v, at)?;
                at.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

async fn publish(ctx: &Ctx, file: &std::path::Path) -> Result<()> {
    let offer = read_offer(file)?;
    let done = ctx.session()?.publish_offer(offer).await?;
    ctx.out.emit(&done, |p| {
        format!("published {} version {}", p.id, p.version)
    })
}

async fn withdraw(ctx: &Ctx, id: &OfferId) -> Result<()> {
    let done = ctx.session()?.withdraw_offer(id).await?;
    ctx.out.emit(&done, |w| format!("withdrew {}", w.id))
}

#[cfg(test)]
mod offer_file_tests {
    use super::*;

    fn examples() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/offers")
    }

    #[test]
    fn every_example_offer_reads_with_prices_in_credits() {
        for class in ["compute", "gpu", "network", "data"] {
            let mut offer = read_offer(&examples().join(format!("{class}.yaml"))).unwrap();
            // What publishing fills in: the provider's did.
            offer.provider = identity::did_of(&identity::generate().verifying_key()).to_string();
            catalog::validate::validate(&offer, false).unwrap_or_else(|e| panic!("{class}: {e}"));
            assert!(offer
                .resources
                .classes()
                .iter()
                .any(|c| c.as_str() == class));
        }
        let gpu = read_offer(&examples().join("gpu.yaml")).unwrap();
        let reserved = gpu.plans[0].pricing.reserved.as_ref().unwrap();
        assert_eq!(reserved.price, Credits::from_base_units(250_000_000));
    }

    #[test]
    fn an_amount_that_is_not_one_is_named_with_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("offer.yaml");
        let text = std::fs::read_to_string(examples().join("compute.yaml"))
            .unwrap()
            .replace("0.12 credits", "0.123456789 credits");
        std::fs::write(&file, text).unwrap();
        let e = format!("{:#}", read_offer(&file).unwrap_err());
        assert!(e.contains("plans.0.pricing.reserved.price"), "{e}");
    }
}
