//! Certified metrics: what the broker measured about a provider, issued as W3C Verifiable
//! Credentials (data model 2.0) under the broker's did:key with a Data Integrity proof
//! (`eddsa-rdfc-2022`), revocable through a Bitstring Status List, and verifiable offline by
//! anyone (did:key resolves without a network, the JSON-LD context is bundled).
//!
//! - `context`: Mercato's published JSON-LD context and the loader that knows it;
//! - `shape`: the credential's JSON shape (subject, claims, status entry) and its canonical bytes;
//! - `stats`: the pure statistics of probe samples (latency percentiles, uptime);
//! - `issue`: signing with `ssi`;
//! - `verify`: each check a verifier runs, each failure named;
//! - `status_list`: the revocation list credential and its bits.

pub mod context;
pub mod issue;
pub mod shape;
pub mod stats;
pub mod status_list;
pub mod verify;

pub use issue::{IssueError, Issuer};
pub use shape::{Claim, Credential, StatusEntry, Subject};
pub use verify::{Failure, Verified};

/// Seconds since the Unix epoch as an XML Schema `dateTimeStamp` (`2026-12-03T14:00:00Z`).
pub fn timestamp(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs.min(i64::MAX as u64) as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The Unix seconds of a `dateTimeStamp`.
pub fn parse_timestamp(s: &str) -> Option<u64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp()).ok())
}
