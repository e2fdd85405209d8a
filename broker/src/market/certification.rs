//! Certified metrics. The prober reaches each provider's agent at the endpoint of its registered
//! configuration, over the Noise channel with the broker's key (`peering::probe`): reachability,
//! round trips, a short transfer and, for compute and GPU providers, the agent's signed
//! attestation. From the samples (`probe_samples`) the broker issues W3C credentials
//! (`certify`), stores each in the content store, anchors its hash on chain, and keeps the
//! catalog's certification of the provider to what is valid. A failed probe revokes what it
//! contradicts; revocation flips the credential's bit in the status list (re-issued at once) and
//! revokes its anchor.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::B256;
use api::certificates::{
    Certificate, CertificateState, Reputation, ReputationComponents, MAX_REASON,
};
use api::events::{CertificateChanged, EventBody};
use api::{ContentId, Did};
use catalog::index::Certification;
use catalog::model::{CertifiedMetric, MetricKind, ResourceClass};
use certify::shape::{Claim, Credential, StatusEntry, Subject};
use futures::StreamExt;
use peering::probe::{Measured, ProbeError};
use rand::RngCore;
use serde_json::Value;

use super::{Market, MarketError};
use crate::events::{Audience, Pending};
use crate::store::{now, Decode};

/// How the broker certifies.
#[derive(Debug, Clone, Copy)]
pub struct CertificationPolicy {
    /// Each provider is probed this often.
    pub probe_interval: Duration,
    /// How long a credential is valid.
    pub validity: Duration,
    /// Round trips per probe.
    pub echoes: u32,
    /// Bytes of the throughput transfer.
    pub transfer_bytes: u32,
    /// Probes running at once, and started per second at most: a thousand providers due
    /// together are spread over a thousand / this seconds.
    pub concurrency: usize,
    pub probes_per_second: u32,
    /// Longest one probe may take.
    pub probe_timeout: Duration,
}

impl Default for CertificationPolicy {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(60),
            validity: Duration::from_secs(24 * 3600),
            echoes: 20,
            transfer_bytes: 256 * 1024,
            concurrency: 8,
            probes_per_second: 20,
            probe_timeout: Duration::from_secs(15),
        }
    }
}

/// The broker as an issuer: its key, where its status list is served, where it probes from.
pub struct Certifier {
    pub issuer: certify::Issuer,
    pub status_url: String,
    pub location: String,
    /// Held from taking a status index to recording it: probes run concurrently, and two
    /// issuances of this process must not take the same index (other replicas are kept apart
    /// by the unique index, and retry on their next round).
    issuing: tokio::sync::Mutex<()>,
    /// Held while the status list is read and re-issued (no older list written last).
    listing: tokio::sync::Mutex<()>,
    /// This process, as the prober lease names it.
    holder: String,
}

impl Certifier {
    pub fn new(key: &ed25519_dalek::SigningKey, base_url: &str, location: &str) -> Self {
        Self {
            issuer: certify::Issuer::new(key),
            status_url: format!("{}/v1/certs/status", base_url.trim_end_matches('/')),
            location: location.to_string(),
            issuing: tokio::sync::Mutex::new(()),
            listing: tokio::sync::Mutex::new(()),
            holder: {
                let mut b = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut b);
                identity::hex_encode(&b)
            },
        }
    }
}

/// Windows of the uptime figures.
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const MONTH: u64 = 30 * DAY;
/// The one row of `status_lists`.
const STATUS_LIST_ROW: i64 = 1;
/// Recorded as the transaction of an anchor or revocation the chain already had (sent before a
/// crash, or by another replica).
const NO_TX: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

/// Whether a new measurement should replace the current credential of its metric: the figures
/// moved materially, or the current one is past half its validity. Pure.
pub fn supersedes(old: &Claim, new: &Claim, old_age: u64, validity: u64) -> bool {
    if old_age * 2 >= validity {
        return true;
    }
    let moved = |a: u64, b: u64, pct: u64| a.abs_diff(b) * 100 > a.max(1) * pct;
    match (old, new) {
        (
            Claim::Latency {
                latency_p50_micros: a50,
                latency_p99_micros: a99,
                ..
            },
            Claim::Latency {
                latency_p50_micros: b50,
                latency_p99_micros: b99,
                ..
            },
        ) => moved(*a50, *b50, 25) || moved(*a99, *b99, 50),
        (
            Claim::Uptime {
                uptime_1h: a1,
                uptime_24h: a24,
                uptime_30d: a30,
            },
            Claim::Uptime {
                uptime_1h: b1,
                uptime_24h: b24,
                uptime_30d: b30,
            },
        ) => {
            // Half a percent in any window: a failure in an hour of probes moves the 1 h figure
            // by more, a single sample in 30 days does not churn credentials.
            a1.abs_diff(*b1) >= 50 || a24.abs_diff(*b24) >= 50 || a30.abs_diff(*b30) >= 50
        }
        (
            Claim::Throughput {
                throughput_bytes_per_second: a,
            },
            Claim::Throughput {
                throughput_bytes_per_second: b,
            },
        ) => moved(*a, *b, 50),
        (
            Claim::VerifiedProvider {
                endpoint: e1,
                configuration_cid: c1,
            },
            Claim::VerifiedProvider {
                endpoint: e2,
                configuration_cid: c2,
            },
        ) => e1 != e2 || c1 != c2,
        (
            Claim::Attested {
                benchmark_ops_per_second: a,
                gpu_models: g1,
                ..
            },
            Claim::Attested {
                benchmark_ops_per_second: b,
                gpu_models: g2,
                ..
            },
        ) => moved(*a, *b, 25) || g1 != g2,
        _ => true,
    }
}

/// The reputation score from its components, and the formula in words. Pure: every term is
/// Laplace-smoothed, so a provider with no record scores 0.5 and one failure moves it.
pub fn reputation_score(c: &ReputationComponents) -> (f64, &'static str) {
    let f = |x: u64| x as f64;
    let contracts = (f(c.contracts_completed) + 1.0)
        / (f(c.contracts_completed + c.contracts_failed + c.contracts_ended_early) + 2.0);
    let disputes = (f(c.records_reported.saturating_sub(c.disputes_lost)) + 1.0)
        / (f(c.records_reported) + 2.0);
    let settlement = (f(c.records_settled) + 1.0) / (f(c.records_reported) + 2.0);
    let uptime = c
        .certified_uptime_30d
        .map_or(0.5, |bp| f64::from(bp) / 10_000.0);
    let score = 0.35 * contracts + 0.25 * disputes + 0.15 * settlement + 0.25 * uptime;
    (
        score.clamp(0.0, 1.0),
        "0.35·(completed+1)/(completed+failed+endedEarly+2) + 0.25·(reported−disputesLost+1)/(reported+2) + 0.15·(settled+1)/(reported+2) + 0.25·(certified 30-day uptime, 0.5 if none)",
    )
}

/// The figures of a claim in words.
pub fn summary(claim: &Claim) -> String {
    let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
    let pct = |bp: u32| format!("{:.2}%", f64::from(bp) / 100.0);
    match claim {
        Claim::Latency {
            latency_p50_micros,
            latency_p99_micros,
            latency_jitter_micros,
        } => format!(
            "p50 {}, p99 {}, jitter {}",
            ms(*latency_p50_micros),
            ms(*latency_p99_micros),
            ms(*latency_jitter_micros)
        ),
        Claim::Uptime {
            uptime_1h,
            uptime_24h,
            uptime_30d,
        } => format!(
            "{} over 1 h, {} over 24 h, {} over 30 d",
            pct(*uptime_1h),
            pct(*uptime_24h),
            pct(*uptime_30d)
        ),
        Claim::Throughput {
            throughput_bytes_per_second,
        } => format!(
            "{:.1} MB/s",
            *throughput_bytes_per_second as f64 / 1_000_000.0
        ),
        Claim::VerifiedProvider {
            endpoint,
            configuration_cid,
        } => format!("agent answered at {endpoint} with the provider's key (configuration {configuration_cid})"),
        Claim::Attested {
            benchmark_workload,
            benchmark_ops_per_second,
            gpu_count,
            gpu_models,
            ..
        } => format!(
            "provider-attested: {benchmark_ops_per_second} {benchmark_workload} ops/s, {gpu_count} GPU(s){}",
            if gpu_models.is_empty() {
                String::new()
            } else {
                format!(" ({gpu_models})")
            }
        ),
    }
}

#[derive(sqlx::FromRow)]
struct CertRow {
    id: String,
    provider: String,
    metric: String,
    status_index: i64,
    hash: String,
    cid: String,
    document: String,
    issued_at: i64,
    valid_until: i64,
    anchor_tx: Option<String>,
    superseded_by: Option<String>,
    revoked_at: Option<i64>,
    revoke_reason: Option<String>,
}

const CERT_COLUMNS: &str = "id, provider, metric, status_index, hash, cid, document, issued_at, valid_until, anchor_tx, superseded_by, revoked_at, revoke_reason";

/// A stored certificate, decoded strictly.
struct Stored {
    view: Certificate,
    credential: Credential,
}

impl Stored {
    /// The event that tells everyone of a change to this certificate.
    fn event(&self, kind: fn(CertificateChanged) -> EventBody, reason: Option<String>) -> Pending {
        Pending {
            subject: self.view.provider.to_string(),
            audience: Audience::Everyone,
            body: kind(CertificateChanged {
                id: self.view.id.clone(),
                provider: self.view.provider.clone(),
                metric: self.view.metric.clone(),
                hash: self.view.hash.clone(),
                cid: self.view.cid.clone(),
                reason,
            }),
        }
    }
}

fn decode(r: CertRow, now: u64) -> Result<Stored, crate::store::Corrupt> {
    let d = Decode {
        table: "certificates",
        key: &r.id,
    };
    let credential: Credential = d.json("document", &r.document)?;
    let valid_until = d.u64("valid_until", r.valid_until)?;
    let revoked_at = d.opt_u64("revoked_at", r.revoked_at)?;
    let state = if revoked_at.is_some() {
        CertificateState::Revoked
    } else if r.superseded_by.is_some() {
        CertificateState::Superseded
    } else if valid_until < now {
        CertificateState::Expired
    } else if r.anchor_tx.is_none() {
        CertificateState::Anchoring
    } else {
        CertificateState::Valid
    };
    let claim = &credential.credential_subject.claim;
    let view = Certificate {
        id: r.id.clone(),
        provider: d.parse("provider", &r.provider)?,
        metric: r.metric,
        issuer: d.parse("document", &credential.issuer)?,
        measured_by_issuer: claim.measured_by_issuer(),
        state,
        summary: summary(claim),
        issued_at: d.u64("issued_at", r.issued_at)?,
        valid_until,
        hash: r.hash,
        cid: d.parse("cid", &r.cid)?,
        status_index: d.u64("status_index", r.status_index)?,
        anchor_tx: d.opt_parse("anchor_tx", r.anchor_tx.as_deref())?,
        revoked_at,
        revoke_reason: r.revoke_reason,
        credential: credential.to_value(),
    };
    Ok(Stored { view, credential })
}

fn hash_of(hex: &str) -> Result<B256, MarketError> {
    hex.parse()
        .map_err(|e| crate::store::Corrupt::new("certificates", "hash", hex, e).into())
}

/// The agent's address (`host:port`) from the configuration's endpoints: the one named
/// `agent`, else the first; it must name a host and a port.
fn agent_address(config: &catalog::provider_config::ProviderConfig) -> Result<String, String> {
    let e = config
        .endpoints
        .iter()
        .find(|e| e.name == "agent")
        .or_else(|| config.endpoints.first())
        .ok_or("the configuration names no endpoint")?;
    let url = url::Url::parse(&e.url).map_err(|err| format!("endpoint {}: {err}", e.url))?;
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => Ok(format!("{host}:{port}")),
        _ => Err(format!("endpoint {} names no host and port", e.url)),
    }
}

/// Unix milliseconds, strictly increasing within this process: each probe's hello is fresh (the
/// agent takes a hello's time once).
fn probe_clock() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// Consecutive failed probes that revoke what a probe certifies: one failure may be a busy
/// agent, or a competitor holding its handshake slots.
const FAILURES_TO_REVOKE: usize = 2;
/// How long a prober's lease lasts without renewal (the others take over after it).
const LEASE_SECS: u64 = 30;
/// The lease's one row.
const LEASE_ROW: i64 = 1;

impl Market {
    /// One round of the prober: if this process holds the prober's lease, probes the providers
    /// whose probe is due (oldest first; at most `probes_per_second` a round, `concurrency` at
    /// once), finishes anchors and revocations left undone, and returns when the next is due.
    pub async fn certify_step(&self) -> Result<Option<u64>, MarketError> {
        let policy = self.policy.certification;
        let interval = policy.probe_interval.as_secs().max(1);
        let now = now();
        if !self.hold_prober_lease(now).await? {
            return Ok(Some(now + interval.min(LEASE_SECS / 2)));
        }
        self.finish_pending().await;
        sqlx::query("DELETE FROM probe_samples WHERE at < $1")
            .bind(now.saturating_sub(MONTH + DAY) as i64)
            .execute(self.store.pool())
            .await?;
        // Each provider's newest configuration and newest probe (with the configuration it
        // probed): due an interval after its last probe, at once for a new configuration.
        let rows: Vec<(String, String, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT c.did, c.cid, p.at, p.config_cid FROM provider_configs c \
             LEFT JOIN probe_samples p ON p.provider = c.did \
               AND p.at = (SELECT MAX(q.at) FROM probe_samples q WHERE q.provider = c.did) \
             WHERE c.version = (SELECT MAX(v.version) FROM provider_configs v WHERE v.did = c.did)",
        )
        .fetch_all(self.store.pool())
        .await?;
        let mut due: Vec<(u64, Did)> = Vec::new();
        let mut next: Option<u64> = None;
        for (did, cid, last, probed_cid) in rows {
            let Ok(did) = did.parse::<Did>() else {
                continue;
            };
            let last = last.map(|l| l.max(0) as u64);
            let at = match last {
                Some(l) if probed_cid.as_deref() == Some(cid.as_str()) => l + interval,
                _ => now,
            };
            if at <= now {
                due.push((last.unwrap_or(0), did));
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        due.sort();
        // Spread: a round starts at most one second's worth of probes.
        let batch = (policy.probes_per_second.max(1) as usize).min(due.len());
        if due.len() > batch {
            next = Some(now + 1);
        }
        let started = std::time::Instant::now();
        let results: Vec<_> = futures::stream::iter(due.into_iter().take(batch))
            .map(|(_, did)| async move {
                let r = self.probe_provider(&did).await;
                (did, r)
            })
            .buffer_unordered(policy.concurrency.max(1))
            .collect()
            .await;
        for (did, r) in results {
            if let Err(e) = r {
                tracing::warn!(provider = %did, error = %e, "certifying a provider failed");
            }
        }
        if started.elapsed() < Duration::from_secs(1) && next == Some(now + 1) {
            tokio::time::sleep(Duration::from_secs(1) - started.elapsed()).await;
        }
        Ok(next.or(Some(now + interval)))
    }

    /// Takes or renews the prober's lease: one replica probes, the others stand by.
    async fn hold_prober_lease(&self, now: u64) -> Result<bool, MarketError> {
        let me = self.certifier.holder.as_str();
        sqlx::query(
            "INSERT INTO prober_lease (id, holder, until) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until = excluded.until \
             WHERE prober_lease.until < $4 OR prober_lease.holder = excluded.holder",
        )
        .bind(LEASE_ROW)
        .bind(me)
        .bind((now + LEASE_SECS) as i64)
        .bind(now as i64)
        .execute(self.store.pool())
        .await?;
        let (holder,): (String,) = sqlx::query_as("SELECT holder FROM prober_lease WHERE id = $1")
            .bind(LEASE_ROW)
            .fetch_one(self.store.pool())
            .await?;
        Ok(holder == me)
    }

    /// Probes one provider, records the sample, issues or revokes what it shows.
    pub async fn probe_provider(&self, did: &Did) -> Result<(), MarketError> {
        let policy = self.policy.certification;
        let Some((_, cid)) = super::providers::current_config(&self.store, did).await? else {
            return Err(MarketError::NotFound(format!(
                "{did} has registered no configuration: there is no agent to probe"
            )));
        };
        let config = self.config_at(&cid).await?;
        let started = now();
        let measured = match agent_address(&config) {
            Err(why) => Err(ProbeError::Unreachable(why)),
            Ok(addr) => {
                let wants_attestation = self.sells_compute(did).await;
                let mut nonce = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                let nonce = identity::hex_encode(&nonce);
                let key = self.identity.clone();
                let provider = did.to_string();
                let probe = peering::probe::probe(
                    &addr,
                    &key,
                    &provider,
                    probe_clock(),
                    policy.echoes,
                    policy.transfer_bytes,
                    wants_attestation.then_some(nonce.as_str()),
                );
                match tokio::time::timeout(policy.probe_timeout, probe).await {
                    Ok(r) => r.map(|m| (addr, m, nonce)),
                    Err(_) => Err(ProbeError::Unreachable("the probe timed out".into())),
                }
            }
        };
        let now = now().max(started);
        let (ok, round_trips, reason) = match &measured {
            Ok((_, m, _)) => (true, m.round_trips.clone(), None),
            Err(e) => (false, Vec::new(), Some(e.to_string())),
        };
        sqlx::query(
            "INSERT INTO probe_samples (provider, at, ok, round_trips, config_cid, reason) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (provider, at) DO NOTHING",
        )
        .bind(did.to_string())
        .bind(now as i64)
        .bind(i64::from(ok))
        .bind(serde_json::to_string(&round_trips).unwrap_or_default())
        .bind(cid.to_string())
        .bind(reason.clone())
        .execute(self.store.pool())
        .await?;
        let window_start = now.saturating_sub(HOUR);
        match measured {
            Ok((addr, m, nonce)) => {
                self.certify_measured(did, &cid, &addr, &m, &nonce, window_start, now)
                    .await?
            }
            Err(e) => {
                tracing::info!(provider = %did, error = %e, "probe failed");
                if self.failed_in_a_row(did).await? >= FAILURES_TO_REVOKE {
                    let why = match e {
                        ProbeError::WrongKey(_) => {
                            "the agent did not complete a handshake with the provider's key"
                        }
                        ProbeError::Refused(_) => "the agent refused the broker's probe",
                        ProbeError::Protocol(_) => "the agent broke the probe protocol",
                        ProbeError::Unreachable(_) => "the agent was unreachable",
                    };
                    for id in self
                        .live_of(did, &["latency", "throughput", "verified-provider"])
                        .await?
                    {
                        if let Err(e) = self.revoke_certificate(&id, why).await {
                            tracing::warn!(certificate = %id, error = %e, "cannot revoke");
                        }
                    }
                }
            }
        }
        self.certify_uptime(did, now).await?;
        self.refresh_provider(did).await
    }

    /// How many of the provider's newest probes failed in a row.
    async fn failed_in_a_row(&self, did: &Did) -> Result<usize, MarketError> {
        let rows: Vec<(i64,)> = sqlx::query_as(
            "SELECT ok FROM probe_samples WHERE provider = $1 ORDER BY at DESC LIMIT 8",
        )
        .bind(did.to_string())
        .fetch_all(self.store.pool())
        .await?;
        Ok(rows.iter().take_while(|(ok,)| *ok == 0).count())
    }

    /// Every unrevoked, unsuperseded, unexpired certificate of these metrics of a provider.
    async fn live_of(&self, did: &Did, metrics: &[&str]) -> Result<Vec<String>, MarketError> {
        let mut out = Vec::new();
        for m in metrics {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT id FROM certificates WHERE provider = $1 AND metric = $2 \
                 AND revoked_at IS NULL AND superseded_by IS NULL AND valid_until >= $3",
            )
            .bind(did.to_string())
            .bind(*m)
            .bind(now() as i64)
            .fetch_all(self.store.pool())
            .await?;
            out.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(out)
    }

    /// Whether the provider sells compute or GPUs (its agent is asked for an attestation).
    async fn sells_compute(&self, did: &Did) -> bool {
        let p = did.to_string();
        self.on_index(move |index| {
            [ResourceClass::Compute, ResourceClass::Gpu]
                .into_iter()
                .any(|class| {
                    index
                        .search(&catalog::Query {
                            providers: vec![p.clone()],
                            classes: vec![class],
                            limit: 1,
                            ..catalog::Query::default()
                        })
                        .total
                        > 0
                })
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn certify_measured(
        &self,
        did: &Did,
        cid: &ContentId,
        addr: &str,
        m: &Measured,
        nonce: &str,
        window_start: u64,
        now: u64,
    ) -> Result<(), MarketError> {
        // Latency over every round trip of the last hour's probes, in the order taken.
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT round_trips FROM probe_samples WHERE provider = $1 AND ok = 1 AND at > $2 ORDER BY at",
        )
        .bind(did.to_string())
        .bind(window_start as i64)
        .fetch_all(self.store.pool())
        .await?;
        let mut trips = Vec::new();
        for (r,) in rows {
            let d = Decode {
                table: "probe_samples",
                key: did.as_str(),
            };
            let v: Vec<u64> = d.json("round_trips", &r)?;
            trips.extend(v);
        }
        let echo = "round trips of 'echo' messages over the Noise IK channel to the agent, with the broker's key";
        if let Some(l) = certify::stats::latency(&trips) {
            let claim = Claim::Latency {
                latency_p50_micros: l.p50,
                latency_p99_micros: l.p99,
                latency_jitter_micros: l.jitter,
            };
            self.issue_if_new(did, claim, window_start, now, echo, l.samples)
                .await?;
        }
        if let Some((bytes, micros)) = m.transfer {
            let claim = Claim::Throughput {
                throughput_bytes_per_second: certify::stats::throughput(bytes, micros),
            };
            let method = "one transfer from the agent to the broker over the Noise channel";
            self.issue_if_new(did, claim, now.saturating_sub(1), now, method, 1)
                .await?;
        }
        let verified = Claim::VerifiedProvider {
            endpoint: addr.to_string(),
            configuration_cid: cid.to_string(),
        };
        let method =
            "Noise IK handshake at the configured endpoint pinned to the provider's did:key";
        self.issue_if_new(did, verified, now, now, method, 1)
            .await?;
        if let Some(signed) = &m.attestation {
            match signed.open(did.as_str(), nonce) {
                Ok(a) => {
                    let claim = Claim::Attested {
                        attested_by: did.to_string(),
                        benchmark_workload: a.workload.clone(),
                        benchmark_ops_per_second: a.ops_per_second,
                        gpu_count: a.gpus.len() as u32,
                        gpu_models: a.gpus.join(", "),
                        attestation: signed.report.clone(),
                        attestation_signature: signed.signature.clone(),
                    };
                    let method = "reported and signed by the provider's agent (provider-attested, not measured by the broker)";
                    self.issue_if_new(did, claim, now, now, method, 1).await?;
                }
                Err(e) => {
                    tracing::warn!(provider = %did, error = %e, "an attestation that does not hold");
                }
            }
        }
        Ok(())
    }

    /// Uptime over 1 h, 24 h and 30 d from every probe.
    async fn certify_uptime(&self, did: &Did, now: u64) -> Result<(), MarketError> {
        let mut shares = [0u32; 3];
        let mut samples = 0u64;
        let mut first = now;
        for (i, window) in [HOUR, DAY, MONTH].into_iter().enumerate() {
            let (total, up, since): (i64, i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), COUNT(CASE WHEN ok = 1 THEN 1 END), MIN(at) FROM probe_samples \
                 WHERE provider = $1 AND at > $2 AND at <= $3",
            )
            .bind(did.to_string())
            .bind(now.saturating_sub(window) as i64)
            .bind(now as i64)
            .fetch_one(self.store.pool())
            .await?;
            if total <= 0 {
                return Ok(());
            }
            shares[i] = (up.max(0) as u64 * 10_000 / total as u64) as u32;
            samples = total as u64;
            first = since.map_or(now, |s| s.max(0) as u64);
        }
        let claim = Claim::Uptime {
            uptime_1h: shares[0],
            uptime_24h: shares[1],
            uptime_30d: shares[2],
        };
        let method = "share of scheduled reachability probes answered by the agent";
        self.issue_if_new(did, claim, first, now, method, samples)
            .await
    }

    /// Issues a credential for `claim` unless the current one of its metric still holds.
    async fn issue_if_new(
        &self,
        did: &Did,
        claim: Claim,
        window_start: u64,
        window_end: u64,
        method: &str,
        samples: u64,
    ) -> Result<(), MarketError> {
        let validity = self.policy.certification.validity.as_secs();
        if let Some(current) = self.current_of(did, claim.metric()).await? {
            let age = now().saturating_sub(current.view.issued_at);
            if !supersedes(
                &current.credential.credential_subject.claim,
                &claim,
                age,
                validity,
            ) {
                return Ok(());
            }
        }
        let subject = Subject {
            id: did.to_string(),
            offer: None,
            claim,
            window_start: certify::timestamp(window_start),
            window_end: certify::timestamp(window_end),
            method: method.to_string(),
            sample_count: samples,
            prober_location: self.certifier.location.clone(),
        };
        self.issue(subject).await
    }

    /// Signs, stores, records and anchors one credential; the older ones of its metric are
    /// superseded once it is anchored.
    async fn issue(&self, subject: Subject) -> Result<(), MarketError> {
        let now = now();
        let validity = self.policy.certification.validity.as_secs();
        let mut uuid = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut uuid);
        uuid[6] = (uuid[6] & 0x0f) | 0x40;
        uuid[8] = (uuid[8] & 0x3f) | 0x80;
        let h = identity::hex_encode(&uuid);
        let id = format!(
            "urn:uuid:{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        let provider = subject.id.clone();
        let metric = subject.claim.metric();
        // The status index is this process's to give while it holds `issuing` (the prober's
        // lease keeps other replicas from issuing; the unique index catches the rest). Signing
        // and storing happen outside any transaction.
        let issuing = self.certifier.issuing.lock().await;
        let (max,): (Option<i64>,) = sqlx::query_as("SELECT MAX(status_index) FROM certificates")
            .fetch_one(self.store.pool())
            .await?;
        let index = max.map_or(0, |m| m + 1);
        if index as usize >= certify::status_list::LIST_BITS {
            return Err(MarketError::Conflict(
                "the status list is full; a second list is not supported yet".into(),
            ));
        }
        let unsigned = Credential::new(
            id.clone(),
            self.certifier.issuer.did().as_str(),
            subject,
            now,
            now + validity,
            StatusEntry::revocation(&self.certifier.status_url, index as u32),
        );
        let signed = self
            .certifier
            .issuer
            .sign(&unsigned)
            .await
            .map_err(|e| MarketError::Conflict(format!("signing a credential: {e}")))?;
        let bytes = signed.canonical_bytes();
        let cid = ContentId::from(self.content.put(&bytes).await?);
        let hash = format!("0x{}", identity::hex_encode(&signed.hash()));
        sqlx::query(&format!(
            "INSERT INTO certificates ({CERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL, NULL)"
        ))
        .bind(&id)
        .bind(&provider)
        .bind(metric)
        .bind(index)
        .bind(&hash)
        .bind(cid.to_string())
        .bind(String::from_utf8_lossy(&bytes).into_owned())
        .bind(now as i64)
        .bind((now + validity) as i64)
        .execute(self.store.pool())
        .await?;
        drop(issuing);
        self.anchor(&id).await
    }

    /// Anchors a recorded credential on chain (unless the chain has it already: a crash after
    /// sending), then supersedes the older ones of its metric and announces it.
    async fn anchor(&self, id: &str) -> Result<(), MarketError> {
        let c = self
            .certificate_row(id)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no certificate {id}")))?;
        let hash = hash_of(&c.view.hash)?;
        let tx_hash = match self.ledger.credential_anchor(hash).await? {
            Some(_) => NO_TX.to_string(),
            None => self
                .ledger
                .anchor_credential(hash, &c.view.cid.to_string())
                .await?
                .to_string(),
        };
        let now = now();
        let mut db = self.store.begin().await?;
        let done = sqlx::query(
            "UPDATE certificates SET anchor_tx = $1 WHERE id = $2 AND anchor_tx IS NULL",
        )
        .bind(&tx_hash)
        .bind(id)
        .execute(&mut *db)
        .await?
        .rows_affected();
        if done == 0 {
            // Another task anchored it meanwhile.
            return Ok(());
        }
        sqlx::query(
            "UPDATE certificates SET superseded_by = $1 WHERE provider = $2 AND metric = $3 AND id <> $1 \
             AND superseded_by IS NULL AND revoked_at IS NULL \
             AND (issued_at < $4 OR (issued_at = $4 AND status_index < $5))",
        )
        .bind(id)
        .bind(c.view.provider.to_string())
        .bind(&c.view.metric)
        .bind(c.view.issued_at as i64)
        .bind(c.view.status_index as i64)
        .execute(&mut *db)
        .await?;
        let event = c.event(EventBody::CertificateIssued, None);
        self.commit(db, vec![event], now).await
    }

    /// Anchors, on-chain revocations and a status list that a crash, a chain outage or another
    /// replica left behind; each failure is logged and retried next round.
    async fn finish_pending(&self) {
        let pending: Result<Vec<(String,)>, _> = sqlx::query_as(
            "SELECT id FROM certificates WHERE anchor_tx IS NULL AND revoked_at IS NULL ORDER BY status_index LIMIT 32",
        )
        .fetch_all(self.store.pool())
        .await;
        for (id,) in pending.unwrap_or_default() {
            if let Err(e) = self.anchor(&id).await {
                tracing::warn!(certificate = %id, error = %e, "anchoring failed; retrying later");
            }
        }
        let revoked: Result<Vec<(String, String, Option<String>)>, _> = sqlx::query_as(
            "SELECT id, hash, revoke_reason FROM certificates WHERE revoked_at IS NOT NULL AND revoke_tx IS NULL LIMIT 32",
        )
        .fetch_all(self.store.pool())
        .await;
        for (id, hash, reason) in revoked.unwrap_or_default() {
            if let Err(e) = self
                .revoke_anchor(&id, &hash, reason.as_deref().unwrap_or_default())
                .await
            {
                tracing::warn!(certificate = %id, error = %e, "revoking the anchor failed; retrying later");
            }
        }
        let stale: Result<(Option<i64>, Option<i64>), _> = sqlx::query_as(
            "SELECT (SELECT MAX(revoked_at) FROM certificates), (SELECT MAX(issued_at) FROM status_lists)",
        )
        .fetch_one(self.store.pool())
        .await;
        if let Ok((Some(revoked), listed)) = stale {
            if listed.is_none_or(|l| l < revoked) {
                if let Err(e) = self.reissue_status_list().await {
                    tracing::warn!(error = %e, "re-issuing the status list failed");
                }
            }
        }
    }

    /// Revokes a credential's anchor on chain (if the chain has one; a credential revoked
    /// before it was anchored never is).
    async fn revoke_anchor(&self, id: &str, hash: &str, reason: &str) -> Result<(), MarketError> {
        let h = hash_of(hash)?;
        let tx = match self.ledger.credential_anchor(h).await? {
            Some(false) => self.ledger.revoke_credential(h, reason).await?.to_string(),
            Some(true) | None => NO_TX.to_string(),
        };
        sqlx::query("UPDATE certificates SET revoke_tx = $1 WHERE id = $2")
            .bind(tx)
            .bind(id)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Revokes a certificate: its status bit (the list is re-issued before this returns), the
    /// catalog's figures, and its anchor on chain (retried by the prober if the chain fails).
    pub async fn revoke_certificate(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<Certificate, MarketError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON {
            return Err(MarketError::BadRequest(format!(
                "a revocation needs a reason of 1-{MAX_REASON} characters"
            )));
        }
        let c = self
            .certificate_row(id)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no certificate {id}")))?;
        if c.view.state == CertificateState::Revoked {
            return Err(MarketError::Conflict(format!(
                "certificate {id} is already revoked"
            )));
        }
        let now = now();
        let mut db = self.store.begin().await?;
        let done = sqlx::query(
            "UPDATE certificates SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(now as i64)
        .bind(reason)
        .bind(id)
        .execute(&mut *db)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(MarketError::Conflict(format!(
                "certificate {id} is already revoked"
            )));
        }
        let event = c.event(EventBody::CertificateRevoked, Some(reason.to_string()));
        self.commit(db, vec![event], now).await?;
        self.reissue_status_list().await?;
        self.refresh_provider(&c.view.provider).await?;
        if let Err(e) = self.revoke_anchor(id, &c.view.hash, reason).await {
            tracing::warn!(certificate = %id, error = %e, "revoking the anchor failed; the prober retries");
        }
        self.certificate(id).await
    }

    /// Signs the status list afresh from every revoked index.
    async fn reissue_status_list(&self) -> Result<Value, MarketError> {
        let _listing = self.certifier.listing.lock().await;
        let now = now();
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT status_index FROM certificates WHERE revoked_at IS NOT NULL")
                .fetch_all(self.store.pool())
                .await?;
        let revoked: Vec<usize> = rows.into_iter().map(|(i,)| i.max(0) as usize).collect();
        let unsigned = certify::status_list::list_credential(
            self.certifier.issuer.did().as_str(),
            &self.certifier.status_url,
            &revoked,
            now,
        );
        let list = self
            .certifier
            .issuer
            .sign_json(unsigned)
            .await
            .map_err(|e| MarketError::Conflict(format!("signing the status list: {e}")))?;
        sqlx::query(
            "INSERT INTO status_lists (id, document, issued_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET document = excluded.document, issued_at = excluded.issued_at",
        )
        .bind(STATUS_LIST_ROW)
        .bind(serde_json::to_string(&list).unwrap_or_default())
        .bind(now as i64)
        .execute(self.store.pool())
        .await?;
        Ok(list)
    }

    /// The signed status list credential (issued on first ask).
    pub async fn status_list(&self) -> Result<Value, MarketError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT document FROM status_lists WHERE id = $1")
                .bind(STATUS_LIST_ROW)
                .fetch_optional(self.store.pool())
                .await?;
        match row {
            Some((doc,)) => Ok(Decode {
                table: "status_lists",
                key: "1",
            }
            .json("document", &doc)?),
            None => self.reissue_status_list().await,
        }
    }

    async fn certificate_row(&self, id: &str) -> Result<Option<Stored>, MarketError> {
        let row: Option<CertRow> = sqlx::query_as(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.store.pool())
        .await?;
        Ok(row.map(|r| decode(r, now())).transpose()?)
    }

    pub async fn certificate(&self, id: &str) -> Result<Certificate, MarketError> {
        Ok(self
            .certificate_row(id)
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no certificate {id}")))?
            .view)
    }

    /// The newest unrevoked, unsuperseded certificate of a provider's metric (anchored or not).
    async fn current_of(&self, did: &Did, metric: &str) -> Result<Option<Stored>, MarketError> {
        let row: Option<CertRow> = sqlx::query_as(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE provider = $1 AND metric = $2 \
             AND revoked_at IS NULL AND superseded_by IS NULL ORDER BY issued_at DESC, status_index DESC LIMIT 1"
        ))
        .bind(did.to_string())
        .bind(metric)
        .fetch_optional(self.store.pool())
        .await?;
        let now = now();
        Ok(row
            .map(|r| decode(r, now))
            .transpose()?
            .filter(|s| s.view.valid_until >= now))
    }

    /// Certificates, newest first: valid ones (or all with `all`), of one provider or all.
    pub async fn certificates(
        &self,
        provider: Option<&Did>,
        all: bool,
    ) -> Result<Vec<Certificate>, MarketError> {
        let live = if all {
            ""
        } else {
            "AND revoked_at IS NULL AND superseded_by IS NULL AND valid_until >= $2"
        };
        let rows: Vec<CertRow> = sqlx::query_as(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE ($1 = '' OR provider = $1) {live} \
             ORDER BY issued_at DESC, status_index DESC LIMIT 500"
        ))
        .bind(provider.map(|p| p.to_string()).unwrap_or_default())
        .bind(now() as i64)
        .fetch_all(self.store.pool())
        .await?;
        let now = now();
        let mut out = Vec::new();
        for r in rows {
            let s = decode(r, now)?;
            if all
                || matches!(
                    s.view.state,
                    CertificateState::Valid | CertificateState::Anchoring
                )
            {
                out.push(s.view);
            }
        }
        Ok(out)
    }

    /// Gives the catalog what is valid about a provider now, and its reputation.
    pub async fn refresh_provider(&self, did: &Did) -> Result<(), MarketError> {
        // The newest valid certificate of each metric.
        let rows: Vec<CertRow> = sqlx::query_as(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE provider = $1 AND revoked_at IS NULL \
             AND superseded_by IS NULL AND anchor_tx IS NOT NULL AND valid_until >= $2 \
             ORDER BY issued_at DESC, status_index DESC"
        ))
        .bind(did.to_string())
        .bind(now() as i64)
        .fetch_all(self.store.pool())
        .await?;
        let mut seen = std::collections::HashSet::new();
        let mut valid = Vec::new();
        for r in rows {
            if seen.insert(r.metric.clone()) {
                valid.push(decode(r, now())?.view);
            }
        }
        let issuer = self.certifier.issuer.did().to_string();
        let mut cert = Certification {
            issuer: issuer.clone(),
            ..Certification::default()
        };
        for c in &valid {
            let Ok(credential) = serde_json::from_value::<Credential>(c.credential.clone()) else {
                continue;
            };
            let (kind, value) = match credential.credential_subject.claim {
                Claim::Latency {
                    latency_p50_micros, ..
                } => {
                    let ms = latency_p50_micros as f64 / 1000.0;
                    cert.latency_ms = Some(ms);
                    (MetricKind::LatencyMs, ms)
                }
                Claim::Uptime { uptime_30d, .. } => {
                    let pct = f64::from(uptime_30d) / 100.0;
                    cert.uptime_percent = Some(pct);
                    (MetricKind::UptimePercent, pct)
                }
                Claim::VerifiedProvider { .. } => {
                    cert.verified = true;
                    continue;
                }
                Claim::Attested {
                    benchmark_ops_per_second,
                    ..
                } => (MetricKind::BenchmarkScore, benchmark_ops_per_second as f64),
                Claim::Throughput { .. } => continue,
            };
            cert.metrics.push(CertifiedMetric {
                kind,
                value,
                issuer: issuer.clone(),
                credential: c.id.clone(),
                valid_until: Some(c.valid_until),
            });
        }
        let certified = (!valid.is_empty()).then_some(cert);
        let reputation = self.reputation(did).await?;
        let p = did.to_string();
        let index = self.index.clone();
        let mut index = index.write().unwrap_or_else(|e| e.into_inner());
        index.set_certification(&p, certified);
        index.set_reputation(&p, reputation.score as f32);
        Ok(())
    }

    /// Gives the catalog the certification of every provider that has one.
    pub async fn refresh_all(&self) -> Result<(), MarketError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT provider FROM certificates WHERE revoked_at IS NULL")
                .fetch_all(self.store.pool())
                .await?;
        for (p,) in rows {
            if let Ok(did) = p.parse::<Did>() {
                self.refresh_provider(&did).await?;
            }
        }
        Ok(())
    }

    /// A provider's reputation from its record: contracts, disputes, settlement, certified uptime.
    pub async fn reputation(&self, did: &Did) -> Result<Reputation, MarketError> {
        let p = did.to_string();
        let count = |sql: &'static str| {
            let p = p.clone();
            async move {
                let (n,): (i64,) = sqlx::query_as(sql)
                    .bind(p)
                    .fetch_one(self.store.pool())
                    .await?;
                Ok::<u64, MarketError>(n.max(0) as u64)
            }
        };
        // Contracts as the chain has them (from the ledger index, which the escrow watch keeps
        // up; this public read never calls the chain): a database that lost or invented
        // contracts does not move the score. Which ones the broker ended early only it knows.
        let on_chain = super::ledger_index::provider_contracts(&self.store, &p).await?;
        let ended: Vec<(String,)> = sqlx::query_as(
            "SELECT c.id FROM contracts c WHERE c.provider = $1 AND c.state IN ('closing', 'closed') \
             AND EXISTS (SELECT 1 FROM credential_holds h WHERE h.contract_id = c.id)",
        )
        .bind(&p)
        .fetch_all(self.store.pool())
        .await?;
        let ended: HashSet<String> = ended.into_iter().map(|(id,)| id).collect();
        let (mut contracts_completed, mut contracts_active, mut contracts_ended_early) = (0, 0, 0);
        for (id, closed) in &on_chain {
            match (ended.contains(&id.to_string()), closed) {
                (true, _) => contracts_ended_early += 1,
                (false, true) => contracts_completed += 1,
                (false, false) => contracts_active += 1,
            }
        }
        // Failed without the provider's signature: proposals it let lapse. A purchase the
        // chain refused (the consumer's funds) is not the provider's failure, and counting it
        // would let a consumer without credits lower any provider's score.
        let contracts_failed = count(
            "SELECT COUNT(*) FROM contracts WHERE provider = $1 AND state = 'failed' AND provider_signature IS NULL",
        )
        .await?;
        let disputes_lost = count(
            "SELECT COUNT(*) FROM usage_records WHERE provider = $1 AND dispute_outcome = 'voided'",
        )
        .await?;
        let disputes_won = count(
            "SELECT COUNT(*) FROM usage_records WHERE provider = $1 AND dispute_outcome = 'upheld'",
        )
        .await?;
        let records_reported =
            count("SELECT COUNT(*) FROM usage_records WHERE provider = $1").await?;
        let records_settled = count(
            "SELECT COUNT(*) FROM usage_records u JOIN settlement_batches b ON b.id = u.batch_id \
             WHERE u.provider = $1 AND b.state = 'settled'",
        )
        .await?;
        let uptime = self.current_of(did, "uptime").await?;
        let certified_uptime_30d =
            uptime.and_then(|u| match u.credential.credential_subject.claim {
                Claim::Uptime { uptime_30d, .. } if u.view.state == CertificateState::Valid => {
                    Some(uptime_30d)
                }
                _ => None,
            });
        let verified_provider = self
            .current_of(did, "verified-provider")
            .await?
            .is_some_and(|c| c.view.state == CertificateState::Valid);
        let components = ReputationComponents {
            contracts_completed,
            contracts_failed,
            contracts_ended_early,
            contracts_active,
            disputes_lost,
            disputes_won,
            records_settled,
            records_reported,
            certified_uptime_30d,
            verified_provider,
        };
        let (score, formula) = reputation_score(&components);
        Ok(Reputation {
            provider: did.clone(),
            score,
            components,
            formula: formula.to_string(),
        })
    }
}

/// Runs the prober until shutdown: woken by configuration changes, otherwise when the next
/// probe is due.
pub async fn certify_loop(market: Market, shutdown: crate::shutdown::Shutdown) {
    let triggers = crate::background::Triggers::new(&market.signals.hub, None, |e| {
        matches!(e, EventBody::ProviderConfigChanged(_))
    });
    // What was certified before a restart is in the catalog at once, not after each probe.
    if let Err(e) = market.refresh_all().await {
        tracing::warn!(error = %e, "loading certifications into the catalog failed");
    }
    let m = Arc::new(market);
    crate::background::run("certification", triggers, shutdown, || {
        let m = m.clone();
        async move { m.certify_step().await }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p50: u64, p99: u64) -> Claim {
        Claim::Latency {
            latency_p50_micros: p50,
            latency_p99_micros: p99,
            latency_jitter_micros: 0,
        }
    }

    #[test]
    fn a_measurement_supersedes_only_when_it_moved_or_the_old_one_aged() {
        assert!(!supersedes(&lat(1000, 2000), &lat(1100, 2500), 10, 1000));
        assert!(supersedes(&lat(1000, 2000), &lat(1300, 2000), 10, 1000));
        assert!(supersedes(&lat(1000, 2000), &lat(1000, 3100), 10, 1000));
        assert!(supersedes(&lat(1000, 2000), &lat(1000, 2000), 500, 1000));
        let up = |h| Claim::Uptime {
            uptime_1h: h,
            uptime_24h: 10_000,
            uptime_30d: 10_000,
        };
        assert!(!supersedes(&up(10_000), &up(10_000), 10, 1000));
        assert!(supersedes(&up(10_000), &up(9_000), 10, 1000));
        let v = |cid: &str| Claim::VerifiedProvider {
            endpoint: "h:1".into(),
            configuration_cid: cid.into(),
        };
        assert!(!supersedes(&v("a"), &v("a"), 10, 1000));
        assert!(supersedes(&v("a"), &v("b"), 10, 1000));
    }

    #[test]
    fn reputation_is_neutral_without_a_record_and_falls_with_failures_and_lost_disputes() {
        let none = ReputationComponents {
            contracts_completed: 0,
            contracts_failed: 0,
            contracts_ended_early: 0,
            contracts_active: 0,
            disputes_lost: 0,
            disputes_won: 0,
            records_settled: 0,
            records_reported: 0,
            certified_uptime_30d: None,
            verified_provider: false,
        };
        assert!((reputation_score(&none).0 - 0.5).abs() < 1e-9);
        let good = ReputationComponents {
            contracts_completed: 10,
            records_reported: 20,
            records_settled: 20,
            certified_uptime_30d: Some(10_000),
            ..none.clone()
        };
        let failed = ReputationComponents {
            contracts_failed: 1,
            ..good.clone()
        };
        let disputed = ReputationComponents {
            disputes_lost: 3,
            ..good.clone()
        };
        let (g, f, d) = (
            reputation_score(&good).0,
            reputation_score(&failed).0,
            reputation_score(&disputed).0,
        );
        assert!(g > 0.8, "{g}");
        assert!(f < g && d < g, "{g} {f} {d}");
    }

    #[test]
    fn the_agent_address_is_the_agent_endpoint() {
        let c = catalog::provider_config::parse(
            b"name: p\nendpoints:\n  - name: web\n    url: https://a.example\n  - name: agent\n    url: tcp://10.0.0.9:7443\n",
        )
        .unwrap();
        assert_eq!(agent_address(&c).as_deref(), Ok("10.0.0.9:7443"));
        let no_port = catalog::provider_config::parse(
            b"name: p\nendpoints:\n  - name: agent\n    url: tcp://10.0.0.9\n",
        )
        .unwrap();
        assert!(agent_address(&no_port)
            .unwrap_err()
            .contains("no host and port"));
    }
}
