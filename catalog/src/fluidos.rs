//! Conversion between offers and FLUIDOS REAR flavors (`nodecore.fluidos.eu/v1alpha1` Flavor:
//! K8Slice, VM, Service, Sensor).
//!
//! Mapped fields (characteristics, GPU, location, price, availability, partitionability, service
//! and sensor descriptors) become typed offer fields the catalog can query. Everything else the
//! flavor carries is kept verbatim in `FluidosDetails`, and the Mercato-only part of an offer
//! (plans, tags, certified metrics, …) travels in the flavor's `metadata.annotations`, so both
//! directions lose nothing: flavor → offer → flavor and offer → flavor → offer are identities.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::model::{
    Compute, Credits, Data, Gpu, GpuShare, Location, Offer, Partitionability, Plan, PlanUnit,
    Pricing, ReservedPrice, Resources,
};
use crate::quantity;

pub const API_VERSION: &str = "nodecore.fluidos.eu/v1alpha1";
/// Annotation that carries the Mercato-only part of an offer.
pub const OFFER_ANNOTATION: &str = "mercato.offer/v1";
/// The currency of Mercato's credits in a flavor's price.
pub const CURRENCY: &str = "MCR";

/// The flavor an offer came from, verbatim (without Mercato's annotation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FluidosDetails(pub Option<Value>);

impl FluidosDetails {
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlavorType {
    K8Slice,
    #[serde(rename = "VM")]
    Vm,
    Service,
    Sensor,
}

impl FlavorType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "K8Slice" => Some(Self::K8Slice),
            "VM" => Some(Self::Vm),
            "Service" => Some(Self::Service),
            "Sensor" => Some(Self::Sensor),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::K8Slice => "K8Slice",
            Self::Vm => "VM",
            Self::Service => "Service",
            Self::Sensor => "Sensor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlavorError {
    #[error("not a FLUIDOS flavor: {0}")]
    Shape(String),
    #[error("unknown flavor type {0:?} (expected K8Slice, VM, Service or Sensor)")]
    UnknownType(String),
    #[error("flavor field {field}: {reason}")]
    Field { field: String, reason: String },
    #[error("the offer has no compute, sensor or service part, so no FLUIDOS flavor type fits it")]
    NoFlavorType,
    #[error("the Mercato annotation is not a valid offer: {0}")]
    Annotation(String),
}

fn field(field: &str, reason: impl ToString) -> FlavorError {
    FlavorError::Field {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// Reads a quantity string (or number) at `path` with `conv`, naming the field on error.
fn quantity_at(
    v: &Value,
    path: &[&str],
    conv: fn(&str) -> Result<u64, quantity::QuantityError>,
) -> Result<Option<u64>, FlavorError> {
    match get(v, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => conv(s).map(Some).map_err(|e| field(&path.join("."), e)),
        Some(Value::Number(n)) => conv(&n.to_string())
            .map(Some)
            .map_err(|e| field(&path.join("."), e)),
        Some(other) => Err(field(&path.join("."), format!("{other} is not a quantity"))),
    }
}

fn gpu_share(count: &str, path: &str) -> Result<Option<GpuShare>, FlavorError> {
    let gpus = quantity::parse(count).map_err(|e| field(path, e))?;
    Ok(if gpus == 0.0 {
        None
    } else if gpus.fract() == 0.0 {
        Some(GpuShare::Whole { count: gpus as u32 })
    } else {
        Some(GpuShare::TimeSliced {
            permille: (gpus * 1000.0).round() as u16,
        })
    })
}

fn vendor_of(model: &str) -> String {
    let lower = model.to_ascii_lowercase();
    ["nvidia", "amd", "intel"]
        .into_iter()
        .find(|v| lower.starts_with(v))
        .unwrap_or("unknown")
        .to_string()
}

/// Parses a flavor price period: `hourly`, `daily`, `weekly`, `monthly` (30 days), `yearly`
/// (365 days), or a duration like `3600s`, `2h`, `7d`.
pub fn period_seconds(period: &str) -> Option<u64> {
    match period {
        "hourly" => return Some(3600),
        "daily" => return Some(86_400),
        "weekly" => return Some(7 * 86_400),
        "monthly" => return Some(30 * 86_400),
        "yearly" => return Some(365 * 86_400),
        _ => {}
    }
    let (num, unit) = period.split_at(period.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then_some(secs)
}

fn format_period(seconds: u64) -> String {
    match seconds {
        3600 => "hourly".into(),
        86_400 => "daily".into(),
        604_800 => "weekly".into(),
        2_592_000 => "monthly".into(),
        31_536_000 => "yearly".into(),
        s => format!("{s}s"),
    }
}

/// Converts a FLUIDOS flavor to an offer of `provider` (the did:key of whoever publishes it).
pub fn offer_from_flavor(flavor: &Value, provider: &str) -> Result<Offer, FlavorError> {
    if flavor.get("kind").and_then(Value::as_str) != Some("Flavor") {
        return Err(FlavorError::Shape("kind is not \"Flavor\"".into()));
    }
    let spec = flavor
        .get("spec")
        .ok_or_else(|| FlavorError::Shape("no spec".into()))?;
    let name = str_at(flavor, &["metadata", "name"])
        .ok_or_else(|| FlavorError::Shape("no metadata.name".into()))?;
    let type_id = str_at(spec, &["flavorType", "typeIdentifier"])
        .ok_or_else(|| FlavorError::Shape("no spec.flavorType.typeIdentifier".into()))?;
    let flavor_type =
        FlavorType::parse(type_id).ok_or_else(|| FlavorError::UnknownType(type_id.into()))?;
    let data = get(spec, &["flavorType", "typeData"])
        .cloned()
        .unwrap_or(Value::Null);

    // Start from the Mercato part when the flavor carries one.
    let mut offer = match str_at(flavor, &["metadata", "annotations", OFFER_ANNOTATION]) {
        Some(text) => serde_json::from_str::<Offer>(text)
            .map_err(|e| FlavorError::Annotation(e.to_string()))?,
        None => Offer {
            id: name.to_string(),
            version: 1,
            provider: provider.to_string(),
            name: name.to_string(),
            description: String::new(),
            tags: Vec::new(),
            location: Location {
                country: String::new(),
                region: String::new(),
                city: String::new(),
                latitude: 0.0,
                longitude: 0.0,
                notes: String::new(),
            },
            resources: Resources::default(),
            plans: Vec::new(),
            green_energy_percent: 0,
            availability: Default::default(),
            partitionability: None,
            declared_metrics: Vec::new(),
            fluidos: FluidosDetails::default(),
            signature: String::new(),
        },
    };
    offer.id = name.to_string();
    offer.provider = provider.to_string();

    // Location.
    if let Some(loc) = spec.get("location") {
        let coord = |k: &str| -> Result<f64, FlavorError> {
            match loc.get(k) {
                Some(Value::String(s)) => s
                    .parse()
                    .map_err(|_| field(&format!("spec.location.{k}"), "not a number")),
                Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or_default()),
                _ => Ok(0.0),
            }
        };
        offer.location.latitude = coord("latitude")?;
        offer.location.longitude = coord("longitude")?;
        if let Some(c) = loc.get("country").and_then(Value::as_str) {
            offer.location.country = c.to_string();
            if offer.location.region.is_empty() {
                offer.location.region = c.to_ascii_lowercase();
            }
        }
        offer.location.city = loc
            .get("city")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        offer.location.notes = loc
            .get("additionalNotes")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
    }

    // Resources by flavor type.
    match flavor_type {
        FlavorType::K8Slice => {
            let ch = data.get("characteristics").cloned().unwrap_or(Value::Null);
            offer.resources.compute = Some(compute_from(
                &ch,
                "spec.flavorType.typeData.characteristics",
            )?);
            offer.resources.gpu = gpu_from(ch.get("gpu"), offer.resources.gpu.take())?;
            offer.partitionability =
                partitionability_from(get(&data, &["policies", "partitionability"]))?;
        }
        FlavorType::Vm => {
            offer.resources.compute = Some(compute_from(&data, "spec.flavorType.typeData")?);
            offer.resources.gpu = gpu_from(data.get("gpu"), offer.resources.gpu.take())?;
        }
        FlavorType::Service => {
            if let Some(n) = data.get("name").and_then(Value::as_str) {
                offer.name = n.to_string();
            }
            if let Some(d) = data.get("description").and_then(Value::as_str) {
                offer.description = d.to_string();
            }
            if let Some(tags) = data.get("tags").and_then(Value::as_array) {
                offer.tags = tags
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect();
            }
        }
        FlavorType::Sensor => {
            let s = |k: &str| {
                data.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let existing = offer.resources.data.take();
            offer.resources.data = Some(Data {
                dataset: s("sensorType"),
                descriptor: s("sensorModel"),
                schema: existing.as_ref().and_then(|d| d.schema.clone()),
                size_bytes: existing.as_ref().map_or(0, |d| d.size_bytes),
                licence: existing
                    .as_ref()
                    .map_or_else(|| "unspecified".into(), |d| d.licence.clone()),
                access_endpoint: s("interface"),
            });
        }
    }

    // Price: the flavor's one price becomes the plan "flavor" unless the offer already has plans.
    if let Some(price) = spec.get("price") {
        let amount = price
            .get("amount")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let currency = price
            .get("currency")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let period = price
            .get("period")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if offer.plans.is_empty() {
            if currency != CURRENCY {
                return Err(field(
                    "spec.price.currency",
                    format!("{currency:?} is not {CURRENCY}; Mercato prices in credits"),
                ));
            }
            let price = Credits::parse_human(amount).ok().ok_or_else(|| {
                field(
                    "spec.price.amount",
                    format!("{amount:?} is not an amount of credits"),
                )
            })?;
            let period_seconds = period_seconds(period).ok_or_else(|| {
                field(
                    "spec.price.period",
                    format!("{period:?} is not a period (hourly, daily, monthly, 3600s…)"),
                )
            })?;
            offer.plans.push(Plan {
                id: "flavor".into(),
                name: "whole flavor".into(),
                pricing: Pricing {
                    reserved: Some(ReservedPrice {
                        price,
                        period_seconds,
                    }),
                    pay_per_use: None,
                },
                capacity: 1,
                unit: whole_unit(&offer.resources),
            });
        }
    }

    let from_annotation = str_at(flavor, &["metadata", "annotations", OFFER_ANNOTATION]).is_some();
    let mut raw = flavor.clone();
    if let Some(ann) = raw
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        ann.remove(OFFER_ANNOTATION);
        if ann.is_empty() {
            if let Some(meta) = raw.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("annotations");
            }
        }
    }
    // A flavor that is exactly what the offer exports to adds nothing: keep the offer as it was.
    offer.fluidos = FluidosDetails::default();
    if from_annotation {
        if let Ok(mut regenerated) = flavor_from_offer(&offer) {
            if let Some(ann) = regenerated
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                ann.remove(OFFER_ANNOTATION);
            }
            if regenerated
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                if let Some(meta) = regenerated
                    .get_mut("metadata")
                    .and_then(Value::as_object_mut)
                {
                    meta.remove("annotations");
                }
            }
            if regenerated == raw {
                return Ok(offer);
            }
        }
    }
    offer.fluidos = FluidosDetails(Some(raw));
    Ok(offer)
}

fn whole_unit(r: &Resources) -> PlanUnit {
    PlanUnit {
        cpu_millicores: r.compute.as_ref().map_or(0, |c| c.cpu_millicores),
        memory_mib: r.compute.as_ref().map_or(0, |c| c.memory_mib),
        storage_gib: r.compute.as_ref().map_or(0, |c| c.storage_gib),
        gpu_permille: r
            .gpu
            .as_ref()
            .map_or(0, |g| (g.share.gpus() * 1000.0) as u32),
        bandwidth_mbps: r.network.as_ref().map_or(0, |n| n.bandwidth_mbps),
        data_accesses: 0,
    }
}

fn compute_from(ch: &Value, at: &str) -> Result<Compute, FlavorError> {
    let inner = || -> Result<Compute, FlavorError> {
        Ok(Compute {
            architecture: ch
                .get("architecture")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            cpu_millicores: quantity_at(ch, &["cpu"], quantity::to_millicores)?
                .ok_or_else(|| field("cpu", "missing"))?,
            memory_mib: quantity_at(ch, &["memory"], quantity::to_mib)?
                .ok_or_else(|| field("memory", "missing"))?,
            storage_gib: quantity_at(ch, &["storage"], quantity::to_gib)?.unwrap_or(0),
            pods: quantity_at(ch, &["pods"], count)?.unwrap_or(0) as u32,
        })
    };
    inner().map_err(|e| match e {
        FlavorError::Field { field, reason } => FlavorError::Field {
            field: format!("{at}.{field}"),
            reason,
        },
        other => other,
    })
}

/// The GPU a flavor describes; fields the flavor has no place for (compute capability, cores)
/// are kept from `existing`.
fn gpu_from(gpu: Option<&Value>, existing: Option<Gpu>) -> Result<Option<Gpu>, FlavorError> {
    let Some(gpu) = gpu else { return Ok(None) };
    let count = match gpu.get("cores") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Ok(None),
    };
    let Some(share) = gpu_share(&count, "gpu.cores")? else {
        return Ok(None);
    };
    let model = gpu
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let memory_mib = quantity_at(gpu, &["memory"], quantity::to_mib)?.unwrap_or(0);
    Ok(Some(match existing {
        Some(g) => Gpu {
            vendor: if g.model == model {
                g.vendor
            } else {
                vendor_of(&model)
            },
            model,
            share,
            memory_mib: if gpu.get("memory").is_some() {
                memory_mib
            } else {
                g.memory_mib
            },
            ..g
        },
        None => Gpu {
            vendor: vendor_of(&model),
            model,
            share,
            memory_mib,
            compute_capability: String::new(),
            cores: 0,
        },
    }))
}

fn partitionability_from(p: Option<&Value>) -> Result<Option<Partitionability>, FlavorError> {
    let Some(p) = p else { return Ok(None) };
    let q = |k: &str,
             conv: fn(&str) -> Result<u64, quantity::QuantityError>|
     -> Result<u64, FlavorError> { Ok(quantity_at(p, &[k], conv)?.unwrap_or(0)) };
    Ok(Some(Partitionability {
        cpu_min_millicores: q("cpuMin", quantity::to_millicores)?,
        memory_min_mib: q("memoryMin", quantity::to_mib)?,
        pods_min: q("podsMin", count)?,
        gpu_min_permille: q("gpuMin", permille)?,
        cpu_step_millicores: q("cpuStep", quantity::to_millicores)?,
        memory_step_mib: q("memoryStep", quantity::to_mib)?,
        pods_step: q("podsStep", count)?,
        gpu_step_permille: q("gpuStep", permille)?,
    }))
}

/// Sets `obj[key]` to `value` unless the verbatim text already there means the same quantity.
fn put_quantity(
    obj: &mut Map<String, Value>,
    key: &str,
    value: u64,
    conv: fn(&str) -> Result<u64, quantity::QuantityError>,
    fmt: fn(u64) -> String,
) {
    let same = match obj.get(key) {
        Some(Value::String(s)) => conv(s).ok() == Some(value),
        Some(Value::Number(n)) => conv(&n.to_string()).ok() == Some(value),
        _ => false,
    };
    if !same {
        obj.insert(key.to_string(), Value::String(fmt(value)));
    }
}

/// The object at `map[key]`, created (or replacing a non-object) when needed.
fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let entry = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    entry.as_object_mut().expect("object")
}

/// `v` as an object (replaced by an empty one when it is not).
fn as_map(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("object")
}

fn put_coord(obj: &mut Map<String, Value>, key: &str, value: f64) {
    let same = match obj.get(key) {
        Some(Value::String(s)) => s.parse::<f64>().ok() == Some(value),
        Some(Value::Number(n)) => n.as_f64() == Some(value),
        _ => false,
    };
    if !same {
        obj.insert(key.to_string(), Value::String(value.to_string()));
    }
}

fn put_str(obj: &mut Map<String, Value>, key: &str, value: &str) {
    if obj.get(key).and_then(Value::as_str) != Some(value) {
        obj.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// Converts an offer to a FLUIDOS flavor. The flavor it came from (if any) is the starting point,
/// so fields Mercato does not model come back unchanged.
pub fn flavor_from_offer(offer: &Offer) -> Result<Value, FlavorError> {
    let mut flavor = offer.fluidos.0.clone().unwrap_or_else(
        || json!({"apiVersion": API_VERSION, "kind": "Flavor", "metadata": {}, "spec": {}}),
    );
    let original_type =
        str_at(&flavor, &["spec", "flavorType", "typeIdentifier"]).and_then(FlavorType::parse);
    let flavor_type = match original_type {
        Some(t) => t,
        None if offer.resources.compute.is_some() => FlavorType::K8Slice,
        None => return Err(FlavorError::NoFlavorType),
    };
    let root = as_map(&mut flavor);

    let mut mercato = offer.clone();
    mercato.fluidos = FluidosDetails::default();
    let annotation = serde_json::to_string(&mercato).expect("offer serialises");
    let meta = child(root, "metadata");
    meta.insert("name".into(), Value::String(offer.id.clone()));
    child(meta, "annotations").insert(OFFER_ANNOTATION.into(), Value::String(annotation));

    let spec = child(root, "spec");
    let ft = child(spec, "flavorType");
    ft.insert(
        "typeIdentifier".into(),
        Value::String(flavor_type.as_str().into()),
    );
    let data = child(ft, "typeData");
    match flavor_type {
        FlavorType::K8Slice | FlavorType::Vm => {
            let target = if flavor_type == FlavorType::K8Slice {
                child(data, "characteristics")
            } else {
                &mut *data
            };
            if let Some(c) = &offer.resources.compute {
                put_str(target, "architecture", &c.architecture);
                put_quantity(
                    target,
                    "cpu",
                    c.cpu_millicores,
                    quantity::to_millicores,
                    quantity::from_millicores,
                );
                put_quantity(
                    target,
                    "memory",
                    c.memory_mib,
                    quantity::to_mib,
                    quantity::from_mib,
                );
                if c.storage_gib > 0 || target.contains_key("storage") {
                    put_quantity(
                        target,
                        "storage",
                        c.storage_gib,
                        quantity::to_gib,
                        quantity::from_gib,
                    );
                }
                if c.pods > 0 || target.contains_key("pods") {
                    put_quantity(target, "pods", u64::from(c.pods), count, |v| v.to_string());
                }
            }
            if let Some(g) = &offer.resources.gpu {
                write_gpu(child(target, "gpu"), g);
            }
            if let (FlavorType::K8Slice, Some(p)) = (flavor_type, &offer.partitionability) {
                let part = child(child(data, "policies"), "partitionability");
                put_quantity(
                    part,
                    "cpuMin",
                    p.cpu_min_millicores,
                    quantity::to_millicores,
                    quantity::from_millicores,
                );
                put_quantity(
                    part,
                    "memoryMin",
                    p.memory_min_mib,
                    quantity::to_mib,
                    quantity::from_mib,
                );
                put_quantity(part, "podsMin", p.pods_min, count, |v| v.to_string());
                put_quantity(
                    part,
                    "gpuMin",
                    p.gpu_min_permille,
                    permille,
                    format_permille,
                );
                put_quantity(
                    part,
                    "cpuStep",
                    p.cpu_step_millicores,
                    quantity::to_millicores,
                    quantity::from_millicores,
                );
                put_quantity(
                    part,
                    "memoryStep",
                    p.memory_step_mib,
                    quantity::to_mib,
                    quantity::from_mib,
                );
                put_quantity(part, "podsStep", p.pods_step, count, |v| v.to_string());
                put_quantity(
                    part,
                    "gpuStep",
                    p.gpu_step_permille,
                    permille,
                    format_permille,
                );
            }
        }
        FlavorType::Service => {
            put_str(data, "name", &offer.name);
            put_str(data, "description", &offer.description);
            let tags: Vec<Value> = offer.tags.iter().cloned().map(Value::String).collect();
            if data.get("tags").and_then(Value::as_array) != Some(&tags) {
                data.insert("tags".into(), Value::Array(tags));
            }
        }
        FlavorType::Sensor => {
            if let Some(dataset) = &offer.resources.data {
                put_str(data, "sensorType", &dataset.dataset);
                put_str(data, "sensorModel", &dataset.descriptor);
                put_str(data, "interface", &dataset.access_endpoint);
            }
        }
    }

    let loc = child(spec, "location");
    put_coord(loc, "latitude", offer.location.latitude);
    put_coord(loc, "longitude", offer.location.longitude);
    put_str(loc, "country", &offer.location.country);
    put_str(loc, "city", &offer.location.city);
    if !offer.location.notes.is_empty() || loc.contains_key("additionalNotes") {
        put_str(loc, "additionalNotes", &offer.location.notes);
    }
    // The flavor's single price is the first reserved price among the plans.
    if let Some(r) = offer.plans.iter().find_map(|p| p.pricing.reserved.as_ref()) {
        let p = child(spec, "price");
        if p.get("amount")
            .and_then(Value::as_str)
            .and_then(|a| Credits::parse_human(a).ok())
            != Some(r.price)
        {
            p.insert("amount".into(), Value::String(r.price.human()));
        }
        put_str(p, "currency", CURRENCY);
        if p.get("period")
            .and_then(Value::as_str)
            .and_then(period_seconds)
            != Some(r.period_seconds)
        {
            p.insert(
                "period".into(),
                Value::String(format_period(r.period_seconds)),
            );
        }
    }
    spec.entry("availability").or_insert(Value::Bool(true));
    spec.entry("providerID")
        .or_insert_with(|| Value::String(offer.provider.clone()));
    Ok(flavor)
}

fn count(s: &str) -> Result<u64, quantity::QuantityError> {
    quantity::parse(s).map(|v| v.round() as u64)
}

fn permille(s: &str) -> Result<u64, quantity::QuantityError> {
    quantity::parse(s).map(|v| (v * 1000.0).round() as u64)
}

fn format_permille(v: u64) -> String {
    if v.is_multiple_of(1000) {
        (v / 1000).to_string()
    } else {
        (v as f64 / 1000.0).to_string()
    }
}

fn write_gpu(gpu: &mut Map<String, Value>, g: &Gpu) {
    put_str(gpu, "model", &g.model);
    let share = (g.share.gpus() * 1000.0).round() as u64;
    put_quantity(gpu, "cores", share, permille, format_permille);
    if g.memory_mib > 0 || gpu.contains_key("memory") {
        put_quantity(
            gpu,
            "memory",
            g.memory_mib,
            quantity::to_mib,
            quantity::from_mib,
        );
    }
}
