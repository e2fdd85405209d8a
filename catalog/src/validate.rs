//! Validation of offers: every bad field is reported with its path and a reason a provider can
//! act on, all at once rather than the first only.

use std::collections::HashSet;
use std::fmt;

use crate::fluidos::FluidosDetails;
use crate::model::{Credits, GpuShare, Offer, Plan, ResourceClass};

/// Largest accepted offer document.
pub const MAX_OFFER_BYTES: usize = 256 * 1024;
/// Largest price or unit price (10^10 credits): products with capacities stay well within u128.
pub const MAX_PRICE: Credits = Credits::whole(10_000_000_000);
pub const MAX_PLANS: usize = 64;
pub const MAX_TAGS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offer is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the offer is not valid JSON for an offer: {0}")]
    Malformed(String),
    #[error("the offer has {} invalid field(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

impl OfferError {
    pub fn fields(&self) -> &[FieldError] {
        match self {
            Self::Invalid(f) => f,
            _ => &[],
        }
    }
}

struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn range<T: PartialOrd + fmt::Display + Copy>(&mut self, field: &str, v: T, lo: T, hi: T) {
        if v < lo || v > hi {
            self.fail(field, format!("{v} is outside {lo}..={hi}"));
        }
    }

    fn price(&mut self, field: &str, v: Credits) {
        if v > MAX_PRICE {
            self.fail(
                field,
                format!(
                    "{} credits is more than the most a price can be, {} credits",
                    v.human(),
                    MAX_PRICE.human()
                ),
            );
        }
    }

    fn finite_range(&mut self, field: &str, v: f64, lo: f64, hi: f64) {
        if !v.is_finite() || v < lo || v > hi {
            self.fail(field, format!("{v} is outside {lo}..={hi}"));
        }
    }

    fn text(&mut self, field: &str, v: &str, min: usize, max: usize) {
        let n = v.chars().count();
        if n < min || n > max {
            self.fail(
                field,
                if n < min {
                    "is required".to_string()
                } else {
                    format!("is {n} characters, over {max}")
                },
            );
        } else if v.chars().any(char::is_control) {
            self.fail(field, "contains control characters");
        }
    }

    fn ident(&mut self, field: &str, v: &str) {
        if v.is_empty()
            || v.len() > 64
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            self.fail(field, format!("{v:?} must be 1-64 of A-Z a-z 0-9 . _ -"));
        }
    }
}

/// Parses an offer document: size limit, JSON with no unknown fields, then `validate`.
pub fn parse_offer(bytes: &[u8], require_signature: bool) -> Result<Offer, OfferError> {
    if bytes.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooLarge {
            size: bytes.len(),
            limit: MAX_OFFER_BYTES,
        });
    }
    let offer: Offer =
        serde_json::from_slice(bytes).map_err(|e| OfferError::Malformed(e.to_string()))?;
    validate(&offer, require_signature)?;
    Ok(offer)
}

/// Checks every field; with `require_signature`, the provider's signature too.
pub fn validate(o: &Offer, require_signature: bool) -> Result<(), OfferError> {
    let mut c = Check { errors: Vec::new() };
    c.ident("id", &o.id);
    if o.version == 0 {
        c.fail("version", "starts at 1");
    }
    let provider_ok = identity::key_of(&o.provider).is_ok();
    if !provider_ok {
        c.fail(
            "provider",
            format!("{:?} is not an Ed25519 did:key", o.provider),
        );
    }
    c.text("name", &o.name, 1, 200);
    c.text("description", &o.description, 0, 4000);
    if o.tags.len() > MAX_TAGS {
        c.fail("tags", format!("{} tags, at most {MAX_TAGS}", o.tags.len()));
    }
    for (i, t) in o.tags.iter().enumerate() {
        if t.is_empty()
            || t.len() > 40
            || !t
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            c.fail(
                format!("tags[{i}]"),
                format!("{t:?} must be 1-40 of a-z 0-9 -"),
            );
        }
    }

    let l = &o.location;
    if l.country.len() != 2 || !l.country.bytes().all(|b| b.is_ascii_uppercase()) {
        c.fail(
            "location.country",
            format!("{:?} is not an ISO 3166-1 alpha-2 code like DE", l.country),
        );
    }
    if l.region.is_empty()
        || l.region.len() > 64
        || !l
            .region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        c.fail(
            "location.region",
            format!("{:?} must be 1-64 of a-z 0-9 - (like eu-west)", l.region),
        );
    }
    c.text("location.city", &l.city, 0, 120);
    c.finite_range("location.latitude", l.latitude, -90.0, 90.0);
    c.finite_range("location.longitude", l.longitude, -180.0, 180.0);

    let r = &o.resources;
    let is_service = matches!(&o.fluidos, FluidosDetails(Some(f)) if f.pointer("/spec/flavorType/typeIdentifier").and_then(|v| v.as_str()) == Some("Service"));
    if r.classes().is_empty() && !is_service {
        c.fail(
            "resources",
            "needs at least one of compute, gpu, network, data",
        );
    }
    if let Some(x) = &r.compute {
        c.text("resources.compute.architecture", &x.architecture, 1, 32);
        c.range(
            "resources.compute.cpuMillicores",
            x.cpu_millicores,
            1,
            1_000_000,
        );
        c.range(
            "resources.compute.memoryMib",
            x.memory_mib,
            1,
            64 * 1024 * 1024,
        );
        c.range(
            "resources.compute.storageGib",
            x.storage_gib,
            0,
            1024 * 1024,
        );
        c.range("resources.compute.pods", x.pods, 0, 100_000);
    }
    if let Some(g) = &r.gpu {
        c.text("resources.gpu.vendor", &g.vendor, 1, 40);
        c.text("resources.gpu.model", &g.model, 1, 80);
        match g.share {
            GpuShare::Whole { count } => c.range("resources.gpu.share.count", count, 1, 1024),
            GpuShare::TimeSliced { permille } => {
                c.range("resources.gpu.share.permille", permille, 1, 999)
            }
        }
        c.range("resources.gpu.memoryMib", g.memory_mib, 1, 1024 * 1024);
        c.text(
            "resources.gpu.computeCapability",
            &g.compute_capability,
            0,
            16,
        );
    }
    if let Some(n) = &r.network {
        c.range(
            "resources.network.bandwidthMbps",
            n.bandwidth_mbps,
            1,
            10_000_000,
        );
        c.finite_range("resources.network.latencyMs", n.latency_ms, 0.0, 60_000.0);
        c.finite_range("resources.network.jitterMs", n.jitter_ms, 0.0, 60_000.0);
        if n.endpoints.len() > 64 {
            c.fail("resources.network.endpoints", "at most 64");
        }
        for (i, e) in n.endpoints.iter().enumerate() {
            c.text(&format!("resources.network.endpoints[{i}]"), e, 1, 256);
        }
    }
    if let Some(d) = &r.data {
        c.text("resources.data.dataset", &d.dataset, 1, 200);
        c.text("resources.data.descriptor", &d.descriptor, 0, 4000);
        c.text("resources.data.licence", &d.licence, 1, 120);
        c.text("resources.data.accessEndpoint", &d.access_endpoint, 1, 512);
        c.range("resources.data.sizeBytes", d.size_bytes, 0, 1 << 60);
    }

    if o.plans.is_empty() || o.plans.len() > MAX_PLANS {
        c.fail(
            "plans",
            format!("needs 1 to {MAX_PLANS} plans, has {}", o.plans.len()),
        );
    }
    let mut ids = HashSet::new();
    for (i, p) in o.plans.iter().enumerate() {
        let at = format!("plans[{i}]");
        c.ident(&format!("{at}.id"), &p.id);
        if !ids.insert(&p.id) {
            c.fail(
                format!("{at}.id"),
                format!("{:?} is used by another plan", p.id),
            );
        }
        c.text(&format!("{at}.name"), &p.name, 1, 200);
        validate_plan(&mut c, &at, p, o);
    }

    c.range("greenEnergyPercent", o.green_energy_percent, 0, 100);
    if let (Some(from), Some(until)) = (o.availability.from, o.availability.until) {
        if from >= until {
            c.fail(
                "availability",
                format!("from {from} is not before until {until}"),
            );
        }
    }
    if let Some(p) = &o.partitionability {
        if let Some(x) = &r.compute {
            if p.cpu_min_millicores > x.cpu_millicores {
                c.fail(
                    "partitionability.cpuMinMillicores",
                    "larger than the offer's cpu",
                );
            }
            if p.memory_min_mib > x.memory_mib {
                c.fail(
                    "partitionability.memoryMinMib",
                    "larger than the offer's memory",
                );
            }
        }
        for (name, min, step) in [
            ("cpu", p.cpu_min_millicores, p.cpu_step_millicores),
            ("memory", p.memory_min_mib, p.memory_step_mib),
            ("pods", p.pods_min, p.pods_step),
        ] {
            if min > 0 && step == 0 {
                c.fail(
                    format!("partitionability.{name}Step"),
                    "must be positive when a minimum is set",
                );
            }
        }
    }
    for (i, m) in o.declared_metrics.iter().enumerate() {
        c.finite_range(&format!("declaredMetrics[{i}].value"), m.value, 0.0, 1e12);
        c.text(&format!("declaredMetrics[{i}].issuer"), &m.issuer, 1, 200);
        c.text(
            &format!("declaredMetrics[{i}].credential"),
            &m.credential,
            1,
            200,
        );
    }

    if require_signature && provider_ok && c.errors.is_empty() {
        if o.signature.is_empty() {
            c.fail("signature", "the offer must be signed by its provider");
        } else if let Err(e) = identity::verify_hex(
            &o.provider,
            identity::Domain::Offer,
            &o.canonical_bytes(),
            &o.signature,
        ) {
            c.fail("signature", e.to_string());
        }
    }
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(OfferError::Invalid(c.errors))
    }
}

fn validate_plan(c: &mut Check, at: &str, p: &Plan, o: &Offer) {
    if p.capacity == 0 {
        c.fail(
            format!("{at}.capacity"),
            "a plan needs capacity of at least 1",
        );
    }
    c.range(&format!("{at}.capacity"), p.capacity, 0, 1_000_000);
    let pr = &p.pricing;
    if pr.reserved.is_none() && pr.pay_per_use.is_none() {
        c.fail(
            format!("{at}.pricing"),
            "needs a reserved price, pay-per-use prices, or both",
        );
    }
    if let Some(r) = &pr.reserved {
        c.price(&format!("{at}.pricing.reserved.price"), r.price);
        c.range(
            &format!("{at}.pricing.reserved.periodSeconds"),
            r.period_seconds,
            60,
            10 * 365 * 86_400,
        );
    }
    if let Some(u) = &pr.pay_per_use {
        for (name, v) in [
            ("cpuCoreHour", u.cpu_core_hour),
            ("memoryGibHour", u.memory_gib_hour),
            ("gpuHour", u.gpu_hour),
            ("networkGb", u.network_gb),
            ("storageGibMonth", u.storage_gib_month),
            ("dataAccess", u.data_access),
        ] {
            c.price(&format!("{at}.pricing.payPerUse.{name}"), v);
        }
    }
    let u = &p.unit;
    if *u == Default::default() {
        c.fail(
            format!("{at}.unit"),
            "a unit must give something (cpu, memory, storage, gpu, bandwidth or data accesses)",
        );
    }
    let cap = u64::from(p.capacity);
    let r = &o.resources;
    let mut within = |name: &str, per_unit: u64, total: Option<u64>, class: ResourceClass| {
        if per_unit == 0 {
            return;
        }
        match total {
            None => c.fail(
                format!("{at}.unit.{name}"),
                format!("the offer has no {} resources", class.as_str()),
            ),
            Some(total) => match per_unit.checked_mul(cap) {
                Some(sold) if sold <= total => {}
                _ => c.fail(
                    format!("{at}.unit.{name}"),
                    format!("capacity {cap} × {per_unit} exceeds the offer's {total}"),
                ),
            },
        }
    };
    within(
        "cpuMillicores",
        u.cpu_millicores,
        r.compute.as_ref().map(|x| x.cpu_millicores),
        ResourceClass::Compute,
    );
    within(
        "memoryMib",
        u.memory_mib,
        r.compute.as_ref().map(|x| x.memory_mib),
        ResourceClass::Compute,
    );
    within(
        "storageGib",
        u.storage_gib,
        r.compute.as_ref().map(|x| x.storage_gib),
        ResourceClass::Compute,
    );
    within(
        "gpuPermille",
        u64::from(u.gpu_permille),
        r.gpu
            .as_ref()
            .map(|g| (g.share.gpus() * 1000.0).round() as u64),
        ResourceClass::Gpu,
    );
    within(
        "bandwidthMbps",
        u.bandwidth_mbps,
        r.network.as_ref().map(|n| n.bandwidth_mbps),
        ResourceClass::Network,
    );
    if u.data_accesses > 0 && r.data.is_none() {
        c.fail(
            format!("{at}.unit.dataAccesses"),
            "the offer has no data resources",
        );
    }
}
