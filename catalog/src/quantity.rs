//! Kubernetes resource quantities ("500m", "2", "4Gi", "1.5G"), as FLUIDOS flavors carry them.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a resource quantity (like 500m, 2, 4Gi)")]
pub struct QuantityError(pub String);

/// The quantity's value in base units (cores, bytes, …) as a real number.
pub fn parse(s: &str) -> Result<f64, QuantityError> {
    let err = || QuantityError(s.to_string());
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-' || c == 'e'))
        .unwrap_or(t.len());
    // "1e3" is an exponent, "1E" would be exa: only treat 'e' as part of the number when digits follow.
    let (num, suffix) = t.split_at(split);
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return Err(err()),
    };
    let value: f64 = num.parse().map_err(|_| err())?;
    if !value.is_finite() || value < 0.0 {
        return Err(err());
    }
    Ok(value * factor)
}

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

pub fn to_millicores(s: &str) -> Result<u64, QuantityError> {
    Ok((parse(s)? * 1000.0).round() as u64)
}

pub fn to_mib(s: &str) -> Result<u64, QuantityError> {
    Ok((parse(s)? / MIB).round() as u64)
}

pub fn to_gib(s: &str) -> Result<u64, QuantityError> {
    Ok((parse(s)? / GIB).round() as u64)
}

pub fn from_millicores(m: u64) -> String {
    if m.is_multiple_of(1000) {
        (m / 1000).to_string()
    } else {
        format!("{m}m")
    }
}

pub fn from_mib(mib: u64) -> String {
    if mib.is_multiple_of(1024) && mib > 0 {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

pub fn from_gib(gib: u64) -> String {
    format!("{gib}Gi")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(to_millicores("500m").unwrap(), 500);
        assert_eq!(to_millicores("2").unwrap(), 2000);
        assert_eq!(to_millicores("1.5").unwrap(), 1500);
        assert_eq!(to_mib("4Gi").unwrap(), 4096);
        assert_eq!(to_mib("512Mi").unwrap(), 512);
        assert_eq!(to_mib("1G").unwrap(), 954);
        assert_eq!(to_gib("100Gi").unwrap(), 100);
        for bad in ["", "Gi", "4Qi", "-1", "abc", "1..2"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for m in [250, 1000, 2500, 64_000] {
            assert_eq!(to_millicores(&from_millicores(m)).unwrap(), m);
        }
        for mib in [512, 1024, 1536, 65_536] {
            assert_eq!(to_mib(&from_mib(mib)).unwrap(), mib);
        }
    }
}
