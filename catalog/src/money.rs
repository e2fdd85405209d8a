//! Money: `Credits`, an amount of the credit token in base units (1 credit = 10^8 base units, the
//! token's 8 decimals). It travels as a decimal string of base units (JSON numbers lose precision
//! past 2^53) and is typed by people as a human amount (`12.5` credits).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Base units in one credit.
pub const BASE_UNITS_PER_CREDIT: u128 = 100_000_000;
/// Decimals of the credit token.
pub const DECIMALS: usize = 8;

/// An amount of credits in base units.
#[derive(
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schema(
    value_type = String,
    pattern = "^(0|[1-9][0-9]{0,37})$",
    example = "1250000000"
)]
pub struct Credits(u128);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditsError {
    #[error("{0:?} is not an amount of credit base units (a whole number, as a string)")]
    NotBaseUnits(String),
    #[error("{0:?} is not an amount of credits (a number with at most 8 decimals, like 12.5)")]
    NotCredits(String),
    #[error("the amount is too large")]
    Overflow,
}

impl Credits {
    pub const ZERO: Credits = Credits(0);

    pub const fn from_base_units(units: u128) -> Self {
        Self(units)
    }

    /// Whole credits.
    pub const fn whole(n: u64) -> Self {
        Self(n as u128 * BASE_UNITS_PER_CREDIT)
    }

    pub const fn base_units(self) -> u128 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// An amount a person typed in credits: `12`, `12.5`, `0.00000001` (at most 8 decimals).
    pub fn parse_human(text: &str) -> Result<Self, CreditsError> {
        let t = text.trim();
        let err = || CreditsError::NotCredits(text.to_string());
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        if int.is_empty()
            || frac.len() > DECIMALS
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        let int: u128 = int.parse().map_err(|_| CreditsError::Overflow)?;
        let frac: u128 = format!("{frac:0<8}").parse().map_err(|_| err())?;
        int.checked_mul(BASE_UNITS_PER_CREDIT)
            .and_then(|v| v.checked_add(frac))
            .map(Self)
            .ok_or(CreditsError::Overflow)
    }

    /// The amount in credits as a person reads it: `12.5`, `0`, `0.00000001`.
    pub fn human(self) -> String {
        let (int, frac) = (
            self.0 / BASE_UNITS_PER_CREDIT,
            self.0 % BASE_UNITS_PER_CREDIT,
        );
        if frac == 0 {
            int.to_string()
        } else {
            format!("{int}.{}", format!("{frac:08}").trim_end_matches('0'))
        }
    }

    /// The amount as a float of base units (for ranking and estimates only, never for paying).
    pub fn as_f64(self) -> f64 {
        self.0 as f64
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    pub fn checked_mul(self, n: u128) -> Option<Self> {
        self.0.checked_mul(n).map(Self)
    }

    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }
}

impl std::iter::Sum for Credits {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, Self::saturating_add)
    }
}

/// Base units, as the wire carries them.
impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} base units", self.0)
    }
}

/// Base units: a whole number without sign, leading zeros or spaces.
impl FromStr for Credits {
    type Err = CreditsError;

    fn from_str(s: &str) -> Result<Self, CreditsError> {
        let err = || CreditsError::NotBaseUnits(s.chars().take(60).collect());
        if s.is_empty()
            || !s.bytes().all(|b| b.is_ascii_digit())
            || (s.len() > 1 && s.starts_with('0'))
        {
            return Err(err());
        }
        s.parse::<u128>()
            .map(Self)
            .map_err(|_| CreditsError::Overflow)
    }
}

impl TryFrom<String> for Credits {
    type Error = CreditsError;

    fn try_from(s: String) -> Result<Self, CreditsError> {
        s.parse()
    }
}

impl From<Credits> for String {
    fn from(c: Credits) -> Self {
        c.0.to_string()
    }
}

impl From<u64> for Credits {
    fn from(v: u64) -> Self {
        Self(u128::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_amounts_and_base_units() {
        assert_eq!(
            Credits::parse_human("12.5").unwrap(),
            Credits(1_250_000_000)
        );
        assert_eq!(Credits::parse_human("0.00000001").unwrap(), Credits(1));
        assert_eq!(Credits::parse_human("7").unwrap(), Credits::whole(7));
        for bad in ["", ".5", "1.123456789", "-1", "1e3", "abc", "1,5"] {
            assert!(Credits::parse_human(bad).is_err(), "{bad}");
        }
        assert_eq!(Credits(1_250_000_000).human(), "12.5");
        assert_eq!(Credits(1).human(), "0.00000001");
        assert_eq!(Credits::ZERO.human(), "0");
        assert_eq!(Credits(42).to_string(), "42");
        assert_eq!("42".parse::<Credits>().unwrap(), Credits(42));
        for bad in ["", "042", "-1", "1.5", " 1", "1e3"] {
            assert!(bad.parse::<Credits>().is_err(), "{bad}");
        }
    }

    #[test]
    fn serialises_as_a_string_and_refuses_numbers() {
        assert_eq!(serde_json::to_string(&Credits(5)).unwrap(), "\"5\"");
        assert_eq!(
            serde_json::from_str::<Credits>("\"5\"").unwrap(),
            Credits(5)
        );
        assert!(serde_json::from_str::<Credits>("5").is_err());
        assert!(serde_json::from_str::<Credits>("\"x\"").is_err());
        let big = format!("\"{}\"", u128::MAX);
        assert_eq!(
            serde_json::from_str::<Credits>(&big).unwrap(),
            Credits(u128::MAX)
        );
    }
}
