//! Queries as URL query parameters (`GET /v1/offers?class=gpu&region=eu-west&minGpuMemoryMib=40960`):
//! the one place that maps names to `Query` fields, used by the broker's API and the SDK.

use crate::model::ResourceClass;
use crate::query::{Cursor, Near, Query, SortKey, MAX_LIMIT};

/// Every accepted parameter, with what it means (the OpenAPI description is checked against it).
pub const PARAMS: &[(&str, &str)] = &[
    ("class", "resource class the offer must have: compute, gpu, network, data (repeatable, all must match)"),
    ("provider", "provider did:key (repeatable, any)"),
    ("country", "ISO country code (repeatable, any)"),
    ("region", "region such as eu-west (repeatable, any)"),
    ("gpuModel", "GPU model such as nvidia-a100 (repeatable, any)"),
    ("arch", "CPU architecture such as amd64 (repeatable, any)"),
    ("q", "words that must all appear in name, description, tags or dataset"),
    ("minCpuMillicores", "minimum CPU per plan unit, millicores"),
    ("minMemoryMib", "minimum memory per plan unit, MiB"),
    ("minGpuMemoryMib", "minimum memory per GPU, MiB"),
    ("minGpuPermille", "minimum GPU share per plan unit, thousandths of a GPU"),
    ("minBandwidthMbps", "minimum bandwidth per plan unit, Mbit/s"),
    ("maxLatencyMs", "maximum network latency, ms"),
    ("maxPrice", "maximum normalised price per unit-hour, credit base units"),
    ("minGreen", "minimum green-energy share, percent"),
    ("maxCertifiedLatencyMs", "maximum certified latency, ms"),
    ("minCertifiedUptime", "minimum certified uptime, percent"),
    ("verified", "true: only providers whose agent the broker verified at its configured endpoint"),
    ("certifiedBy", "did of an issuer whose certified figures count (repeatable, any)"),
    ("near", "latitude,longitude,radiusKm"),
    ("sort", "price (default), latency, uptime, green, reputation"),
    ("limit", "page size, 1-200 (default 20)"),
    ("cursor", "the nextCursor of the previous page"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query parameter {param}: {reason}")]
pub struct ParamError {
    pub param: String,
    pub reason: String,
}

fn bad(param: &str, reason: impl Into<String>) -> ParamError {
    ParamError {
        param: param.to_string(),
        reason: reason.into(),
    }
}

fn number<T: std::str::FromStr>(param: &str, v: &str) -> Result<T, ParamError> {
    v.parse()
        .map_err(|_| bad(param, format!("{v:?} is not a valid number")))
}

fn finite(param: &str, v: &str) -> Result<f64, ParamError> {
    let x: f64 = number(param, v)?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(bad(param, "must be a finite number"))
    }
}

/// Builds a query from decoded `(name, value)` pairs; unknown names and bad values are errors.
pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Query, ParamError> {
    let mut q = Query::default();
    let mut count = 0;
    for (k, v) in pairs {
        count += 1;
        if count > 100 {
            return Err(bad(k, "too many parameters (at most 100)"));
        }
        if v.len() > 512 {
            return Err(bad(k, "value longer than 512 characters"));
        }
        match k {
            "class" => q
                .classes
                .push(ResourceClass::parse(v).ok_or_else(|| {
                    bad(k, format!("{v:?} is not compute, gpu, network or data"))
                })?),
            "provider" => q.providers.push(v.to_string()),
            "country" => q.countries.push(v.to_ascii_uppercase()),
            "region" => q.regions.push(v.to_string()),
            "gpuModel" => q.gpu_models.push(v.to_string()),
            "arch" => q.architectures.push(v.to_string()),
            "q" => q.text.push(v.to_string()),
            "minCpuMillicores" => q.min_cpu_millicores = Some(number(k, v)?),
            "minMemoryMib" => q.min_memory_mib = Some(number(k, v)?),
            "minGpuMemoryMib" => q.min_gpu_memory_mib = Some(number(k, v)?),
            "minGpuPermille" => q.min_gpu_permille = Some(number(k, v)?),
            "minBandwidthMbps" => q.min_bandwidth_mbps = Some(number(k, v)?),
            "maxLatencyMs" => q.max_latency_ms = Some(finite(k, v)?),
            "maxPrice" => q.max_price = Some(finite(k, v)?),
            "minGreen" => {
                let g: u8 = number(k, v)?;
                if g > 100 {
                    return Err(bad(k, "a percentage is 0-100"));
                }
                q.min_green = Some(g);
            }
            "maxCertifiedLatencyMs" => q.max_certified_latency_ms = Some(finite(k, v)?),
            "minCertifiedUptime" => q.min_certified_uptime = Some(finite(k, v)?),
            "verified" => {
                q.verified_only = match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(k, format!("{v:?} is not true or false"))),
                }
            }
            "certifiedBy" => {
                if !v.starts_with("did:key:") || v.len() > 100 {
                    return Err(bad(k, format!("{v:?} is not a did:key")));
                }
                q.certified_by.push(v.to_string())
            }
            "near" => {
                let parts: Vec<&str> = v.split(',').collect();
                let [lat, lon, radius] = parts[..] else {
                    return Err(bad(k, "expected latitude,longitude,radiusKm"));
                };
                let near = Near {
                    latitude: finite(k, lat)?,
                    longitude: finite(k, lon)?,
                    radius_km: finite(k, radius)?,
                };
                if near.latitude.abs() > 90.0
                    || near.longitude.abs() > 180.0
                    || near.radius_km <= 0.0
                    || near.radius_km > 20_040.0
                {
                    return Err(bad(
                        k,
                        "latitude within ±90, longitude within ±180, radius 0-20040 km",
                    ));
                }
                q.near = Some(near);
            }
            "sort" => {
                q.sort = SortKey::parse(v).ok_or_else(|| {
                    bad(
                        k,
                        format!("{v:?} is not price, latency, uptime, green or reputation"),
                    )
                })?
            }
            "limit" => {
                let l: usize = number(k, v)?;
                if l == 0 || l > MAX_LIMIT {
                    return Err(bad(k, format!("must be 1-{MAX_LIMIT}")));
                }
                q.limit = l;
            }
            "cursor" => {
                q.cursor = Some(
                    Cursor::decode(v).ok_or_else(|| bad(k, "not a cursor from a previous page"))?,
                )
            }
            _ => return Err(bad(k, "unknown parameter")),
        }
    }
    Ok(q)
}

/// The parameters that express `q` (the SDK's side of `parse`).
pub fn to_pairs(q: &Query) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    out.extend(q.classes.iter().map(|c| ("class", c.as_str().to_string())));
    out.extend(q.providers.iter().map(|v| ("provider", v.clone())));
    out.extend(q.countries.iter().map(|v| ("country", v.clone())));
    out.extend(q.regions.iter().map(|v| ("region", v.clone())));
    out.extend(q.gpu_models.iter().map(|v| ("gpuModel", v.clone())));
    out.extend(q.architectures.iter().map(|v| ("arch", v.clone())));
    out.extend(q.text.iter().map(|v| ("q", v.clone())));
    let mut opt = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k, v));
        }
    };
    opt(
        "minCpuMillicores",
        q.min_cpu_millicores.map(|v| v.to_string()),
    );
    opt("minMemoryMib", q.min_memory_mib.map(|v| v.to_string()));
    opt(
        "minGpuMemoryMib",
        q.min_gpu_memory_mib.map(|v| v.to_string()),
    );
    opt("minGpuPermille", q.min_gpu_permille.map(|v| v.to_string()));
    opt(
        "minBandwidthMbps",
        q.min_bandwidth_mbps.map(|v| v.to_string()),
    );
    opt("maxLatencyMs", q.max_latency_ms.map(|v| v.to_string()));
    opt("maxPrice", q.max_price.map(|v| v.to_string()));
    opt("minGreen", q.min_green.map(|v| v.to_string()));
    opt(
        "maxCertifiedLatencyMs",
        q.max_certified_latency_ms.map(|v| v.to_string()),
    );
    opt(
        "minCertifiedUptime",
        q.min_certified_uptime.map(|v| v.to_string()),
    );
    opt("verified", q.verified_only.then(|| "true".to_string()));
    for d in &q.certified_by {
        opt("certifiedBy", Some(d.clone()));
    }
    opt(
        "near",
        q.near
            .map(|n| format!("{},{},{}", n.latitude, n.longitude, n.radius_km)),
    );
    opt(
        "sort",
        (q.sort != SortKey::Price).then(|| q.sort.as_str().to_string()),
    );
    opt("limit", Some(q.limit.to_string()));
    opt("cursor", q.cursor.map(|c| c.encode()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip() {
        let q = Query {
            classes: vec![ResourceClass::Gpu],
            regions: vec!["eu-west".into(), "eu-central".into()],
            gpu_models: vec!["nvidia-a100".into()],
            text: vec!["training".into()],
            min_gpu_memory_mib: Some(40 * 1024),
            max_price: Some(1.5e8),
            min_green: Some(40),
            near: Some(Near {
                latitude: 48.8,
                longitude: 2.3,
                radius_km: 500.0,
            }),
            sort: SortKey::Green,
            limit: 50,
            cursor: Some(Cursor {
                key: -40.0,
                tiebreak: 99,
            }),
            ..Query::default()
        };
        let pairs = to_pairs(&q);
        let back = parse(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(back, q);
    }

    #[test]
    fn bad_parameters_say_which_and_why() {
        for (k, v, why) in [
            ("class", "quantum", "is not compute"),
            ("limit", "0", "must be 1-200"),
            ("limit", "x", "not a valid number"),
            ("minGreen", "150", "0-100"),
            ("near", "1,2", "latitude,longitude"),
            ("near", "95,2,10", "within ±90"),
            ("maxPrice", "NaN", "finite"),
            ("cursor", "abc", "not a cursor"),
            ("sort", "cheap", "is not price"),
            ("colour", "red", "unknown parameter"),
            ("verified", "yes", "not true or false"),
            ("certifiedBy", "broker", "not a did:key"),
        ] {
            let err = parse([(k, v)]).unwrap_err();
            assert_eq!(err.param, k);
            assert!(err.reason.contains(why), "{k}={v}: {err}");
        }
    }

    #[test]
    fn every_parameter_is_documented() {
        let documented: Vec<&str> = PARAMS.iter().map(|(k, _)| *k).collect();
        let q = Query {
            classes: vec![ResourceClass::Gpu],
            providers: vec!["p".into()],
            countries: vec!["DE".into()],
            regions: vec!["r".into()],
            gpu_models: vec!["g".into()],
            architectures: vec!["a".into()],
            text: vec!["t".into()],
            min_cpu_millicores: Some(1),
            min_memory_mib: Some(1),
            min_gpu_memory_mib: Some(1),
            min_gpu_permille: Some(1),
            min_bandwidth_mbps: Some(1),
            max_latency_ms: Some(1.0),
            max_price: Some(1.0),
            min_green: Some(1),
            max_certified_latency_ms: Some(1.0),
            min_certified_uptime: Some(1.0),
            verified_only: true,
            certified_by: vec!["did:key:z6Mkissuer".into()],
            near: Some(Near {
                latitude: 1.0,
                longitude: 1.0,
                radius_km: 1.0,
            }),
            sort: SortKey::Uptime,
            limit: 3,
            cursor: Some(Cursor {
                key: 1.0,
                tiebreak: 1,
            }),
        };
        let used: std::collections::BTreeSet<&str> = to_pairs(&q).iter().map(|(k, _)| *k).collect();
        assert_eq!(used.len(), documented.len());
        assert!(used.iter().all(|k| documented.contains(k)));
    }
}
