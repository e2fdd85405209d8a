//! The provider agent (`mercato agent`): runs on the provider's machine with its keys, follows
//! the broker's events for its contracts (resuming where it left off), keeps the table of
//! credentials to admit on disk, serves the data plane — consumers connect over the Noise channel
//! and are admitted only with a valid credential, also while the broker is down — and meters
//! every session into signed usage records.

pub mod discovery;
pub mod metering;
pub mod session_process;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::usage::{UsageOutcome, UsageRecord, MAX_RECORDS_PER_REPORT};
use api::{Event, EventBody};
use ed25519_dalek::SigningKey;
use peering::channel::{self, Counters, Decision};
use peering::envelope::secret_hash;
use peering::{Admission, AdmissionTable, Refusal};
use rand::RngCore;
use sdk::credentials::{Answer, Presentation};
use sdk::Session;
use tokio::net::{TcpListener, TcpStream};

use metering::UsageLog;
use session_process::{ProcessUsage, SessionProcess};

fn now() -> u64 {
    now_ms() / 1000
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How often live sessions re-check their credential (revocation takes effect within this).
const RECHECK: Duration = Duration::from_millis(500);

/// What an admitted session is connected to.
#[derive(Debug, Clone)]
pub enum Service {
    /// A TCP service (the generic kind's purchased service).
    Tcp(SocketAddr),
    /// A compute session: `sh -c COMMAND` per session, the channel as its stdin and stdout; its
    /// CPU time and peak memory are metered.
    Exec(String),
}

/// How long a compute session's process may run on after its consumer left.
const EXEC_GRACE: Duration = Duration::from_secs(10);

pub struct AgentConfig {
    pub listen: SocketAddr,
    pub service: Service,
    pub state_dir: PathBuf,
    /// Sign proposed contracts for this provider's offers by itself (the provider's policy).
    pub auto_accept: bool,
    /// Without the broker for longer than this, the agent admits no new session and ends the
    /// running ones (a revocation it cannot hear of holds at most this long).
    pub offline_limit: Duration,
}

/// Longest a peer may take to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress at once, overall and from one address.
pub const MAX_HANDSHAKES: usize = 256;
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 16;
/// Sessions open at once on one credential (a leaked or misused credential runs no more).
pub const MAX_SESSIONS_PER_CREDENTIAL: usize = 32;

/// How often the event follower notes that the broker is still there.
const CONTACT_POLL: Duration = Duration::from_secs(5);
const OFFLINE: &str = "the agent has been cut from the broker for longer than its offline limit";

fn offline(contact: &AtomicU64, limit: Duration) -> bool {
    now().saturating_sub(contact.load(Ordering::Relaxed)) > limit.as_secs()
}

/// Live counts per key (handshakes per source address, sessions per credential).
type Counts<K> = Arc<Mutex<HashMap<K, usize>>>;

/// One of at most `cap` slots of a key, given back when dropped.
struct Slot<K: std::hash::Hash + Eq + Clone> {
    counts: Counts<K>,
    key: K,
}

impl<K: std::hash::Hash + Eq + Clone> Slot<K> {
    fn take(counts: &Counts<K>, key: K, cap: usize) -> Option<Self> {
        let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.entry(key.clone()).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Self {
            counts: counts.clone(),
            key,
        })
    }
}

impl<K: std::hash::Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.key);
            }
        }
    }
}

pub struct Agent {
    session: Arc<Session>,
    key: SigningKey,
    config: AgentConfig,
    table: Arc<Mutex<AdmissionTable>>,
    usage: Arc<UsageLog>,
    /// Unix seconds the broker was last heard from (an event or a keep-alive).
    contact: Arc<AtomicU64>,
    /// Presentations taken within the skew window (a replayed one is refused).
    replay: Mutex<peering::ReplayGuard>,
    /// Sessions open per credential hash.
    sessions: Counts<String>,
    /// The broker's did (pinned by the session): the one key admitted for probes.
    broker: std::sync::OnceLock<String>,
}

/// Probe sessions at once, and how long one may last: probing takes little of the provider.
pub const MAX_PROBES: usize = 2;
/// Longer than the broker's own probe timeout (15 s), so the broker ends a slow probe first.
pub const PROBE_LIMIT: Duration = Duration::from_secs(20);
const PROBE_SLOT: &str = "probe";

/// What a connection was admitted as.
enum Admitted {
    Consumer(Admission, String, Slot<String>),
    Probe(Slot<String>),
}

/// A short benchmark: SHA-256 over 1 KiB blocks for about 200 ms, in blocks per second.
fn benchmark() -> u64 {
    use sha2::Digest;
    let block = [7u8; 1024];
    let start = Instant::now();
    let mut n = 0u64;
    let mut h = [0u8; 32];
    while start.elapsed() < Duration::from_millis(200) {
        for _ in 0..64 {
            h = sha2::Sha256::new()
                .chain_update(h)
                .chain_update(block)
                .finalize()
                .into();
        }
        n += 64;
    }
    std::hint::black_box(h);
    (n as f64 / start.elapsed().as_secs_f64()) as u64
}

fn lock(t: &Mutex<AdmissionTable>) -> std::sync::MutexGuard<'_, AdmissionTable> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

fn table_path(dir: &Path) -> PathBuf {
    dir.join("admission.json")
}

/// Writes the table whole, owner-only and synced (temporary file, then rename).
fn save(dir: &Path, table: &AdmissionTable) -> std::io::Result<()> {
    sdk::files::write_private(
        &table_path(dir),
        &serde_json::to_vec(table).map_err(std::io::Error::other)?,
    )
}

/// The consumer of `contract` as the document this provider signed names it (the provider's
/// own signature proves the document is the one it accepted).
async fn signed_consumer(session: &Session, contract: api::ContractId) -> Result<api::Did, String> {
    let shown = session
        .contract(contract)
        .await
        .map_err(|e| e.to_string())?;
    let text = shown.document.ok_or("no contract document")?;
    let signature = shown
        .provider_signature
        .ok_or("a contract this provider never signed")?;
    signature
        .verify(
            session.did(),
            identity::Domain::ContractDocument,
            text.as_bytes(),
        )
        .map_err(|_| "the contract document is not the one this provider signed".to_string())?;
    let doc = api::document::ContractDocument::parse(text.as_bytes()).map_err(|e| e.to_string())?;
    if doc.provider.did != *session.did() {
        return Err("the contract names another provider".into());
    }
    Ok(doc.consumer.did)
}

/// Whether an issued credential may be admitted: signed by the pinned broker, and for the
/// consumer of the contract this provider signed (a broker cannot admit someone else). The outer
/// error: it cannot be told now (the broker is away, or not the pinned one).
async fn admissible(
    session: &Session,
    c: &api::events::CredentialIssued,
) -> Result<Result<(), String>, String> {
    let broker = session.broker_did().await.map_err(|e| e.to_string())?;
    if !c.verify(&broker) {
        return Ok(Err("a credential not signed by the pinned broker".into()));
    }
    let consumer = signed_consumer(session, c.contract).await?;
    if consumer != c.consumer {
        return Ok(Err(format!(
            "a credential for {}, but the signed contract's consumer is {consumer}",
            c.consumer
        )));
    }
    Ok(Ok(()))
}

/// Applies one broker event to the table; true when it changed what is admitted.
pub fn apply(table: &mut AdmissionTable, e: &Event) -> bool {
    match &e.body {
        EventBody::CredentialIssued(c) => {
            table.admit(Admission {
                hash: c.hash.to_string(),
                contract_id: c.contract.to_string(),
                consumer: c.consumer.to_string(),
                not_before: c.not_before,
                expires_at: c.expires_at,
                revoked: false,
            });
            true
        }
        EventBody::CredentialRotated(r) => {
            for h in &r.replaced {
                table.expire_at(h.as_str(), r.until);
            }
            true
        }
        EventBody::CredentialRevoked(r) => {
            for h in &r.revoked {
                table.revoke(h.as_str());
            }
            true
        }
        EventBody::ContractClosed(c) | EventBody::ContractFailed(c) => {
            table.revoke_contract(&c.contract.to_string());
            true
        }
        _ => false,
    }
}

impl Agent {
    /// Loads the agent's state (admission table, event cursor) from `config.state_dir`.
    pub fn new(session: Session, key: SigningKey, config: AgentConfig) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.state_dir)?;
        let table = match std::fs::read(table_path(&config.state_dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AdmissionTable::default(),
            Err(e) => return Err(e),
        };
        let usage = Arc::new(UsageLog::new(&config.state_dir));
        Ok(Self {
            session: Arc::new(session),
            key,
            config,
            table: Arc::new(Mutex::new(table)),
            usage,
            contact: Arc::new(AtomicU64::new(now())),
            replay: Mutex::new(peering::ReplayGuard::new(now_ms())),
            sessions: Counts::default(),
            broker: std::sync::OnceLock::new(),
        })
    }

    /// Follows the broker's events for ever, reconnecting (and catching up) after outages.
    async fn follow(
        session: Arc<Session>,
        table: Arc<Mutex<AdmissionTable>>,
        dir: PathBuf,
        auto_accept: bool,
        contact: Arc<AtomicU64>,
    ) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let cursor = lock(&table).cursor;
            match session.events(Some(cursor)).await {
                Ok(mut stream) => {
                    backoff = Duration::from_millis(200);
                    contact.store(now(), Ordering::Relaxed);
                    loop {
                        // Polled in short steps so keep-alives count as contact too.
                        let e = match tokio::time::timeout(CONTACT_POLL, stream.next()).await {
                            Err(_) => {
                                let quiet = stream.last_activity().elapsed().as_secs();
                                contact.fetch_max(now().saturating_sub(quiet), Ordering::Relaxed);
                                continue;
                            }
                            Ok(Ok(Some(e))) => e,
                            // Ended, stalled or broken: reconnect from the cursor.
                            Ok(_) => break,
                        };
                        contact.store(now(), Ordering::Relaxed);
                        match &e.body {
                            EventBody::ContractProposed(c)
                                if auto_accept && c.provider == *session.did() =>
                            {
                                let s = session.clone();
                                let id = c.contract;
                                tokio::spawn(async move {
                                    if let Err(err) = s.accept(id).await {
                                        tracing::warn!(contract = %id, error = %err, "cannot accept");
                                    }
                                });
                            }
                            _ => {}
                        }
                        let admit = match &e.body {
                            EventBody::CredentialIssued(c) => match admissible(&session, c).await {
                                Ok(Ok(())) => true,
                                Ok(Err(why)) => {
                                    tracing::error!(contract = %c.contract, "{why}; not admitted");
                                    false
                                }
                                // Unknown for now: the event is read again after a reconnect.
                                Err(err) => {
                                    tracing::warn!(contract = %c.contract, error = %err, "cannot check a credential yet");
                                    break;
                                }
                            },
                            _ => true,
                        };
                        let mut t = lock(&table);
                        if admit {
                            apply(&mut t, &e);
                        }
                        t.cursor = e.seq;
                        // Expired credentials are refused anyway: the table keeps only the rest.
                        t.prune(now());
                        if let Err(err) = save(&dir, &t) {
                            tracing::error!(error = %err, "cannot save the admission table");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "broker unreachable; admitting from the local table")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Sends the usage log to the broker for ever, in order, from the last acknowledged record
    /// (kept on disk): retried until the broker answers, each record once.
    async fn push_usage(session: Arc<Session>, usage: Arc<UsageLog>, dir: PathBuf) {
        let offset_file = dir.join("usage.pushed");
        loop {
            // Without a readable offset everything is sent again: the broker answers each
            // record already stored as a duplicate, and charges it once.
            let done: usize = match std::fs::read_to_string(&offset_file) {
                Ok(t) => t.trim().parse().unwrap_or_else(|_| {
                    tracing::warn!(file = %offset_file.display(), "unreadable; reporting the whole usage log again");
                    0
                }),
                Err(_) => 0,
            };
            let records = match usage.read() {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "the usage log is unreadable; nothing is reported until it is repaired");
                    Vec::new()
                }
            };
            if records.len() > done {
                let batch = &records[done..records.len().min(done + MAX_RECORDS_PER_REPORT)];
                match session.report_usage(batch).await {
                    Ok(outcomes) => {
                        for o in outcomes
                            .iter()
                            .filter(|o| o.status == UsageOutcome::Refused)
                        {
                            tracing::warn!(record = %o.id, reason = ?o.reason, "usage record refused");
                        }
                        let _ = std::fs::write(&offset_file, (done + batch.len()).to_string());
                        continue;
                    }
                    Err(e) => tracing::info!(error = %e, "usage not reported yet; retrying"),
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Runs the agent: the event follower and the data plane.
    pub async fn run(self) -> std::io::Result<()> {
        let listener = TcpListener::bind(self.config.listen).await?;
        self.serve(listener).await
    }

    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        if let Ok(did) = self.session.broker_did().await {
            let _ = self.broker.set(did.to_string());
        }
        tokio::spawn(Self::follow(
            self.session.clone(),
            self.table.clone(),
            self.config.state_dir.clone(),
            self.config.auto_accept,
            self.contact.clone(),
        ));
        tokio::spawn(Self::push_usage(
            self.session.clone(),
            self.usage.clone(),
            self.config.state_dir.clone(),
        ));
        let me = Arc::new(self);
        if me.broker.get().is_none() {
            // Probes are refused until the broker's did is known: ask again until it is.
            tracing::warn!("the broker's did is unknown yet: probes are refused until it is");
            let me = me.clone();
            tokio::spawn(async move {
                while me.broker.get().is_none() {
                    tokio::time::sleep(CONTACT_POLL).await;
                    if let Ok(did) = me.session.broker_did().await {
                        let _ = me.broker.set(did.to_string());
                    }
                }
            });
        }
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let per_source: Counts<IpAddr> = Counts::default();
        loop {
            let (stream, peer) = listener.accept().await?;
            // Under load a connection is refused at once (closed unanswered): handshakes in
            // progress are capped, overall and per source address.
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "too many handshakes in progress; refused");
                continue;
            };
            let Some(source) = Slot::take(&per_source, peer.ip(), MAX_HANDSHAKES_PER_SOURCE) else {
                tracing::debug!(%peer, "too many handshakes from this address; refused");
                continue;
            };
            let me = me.clone();
            tokio::spawn(async move {
                if let Err(e) = me.handle(stream, (permit, source)).await {
                    tracing::info!(%peer, error = %e, "session ended");
                }
            });
        }
    }

    /// Whether the broker has been silent for longer than the offline limit.
    fn offline(&self) -> bool {
        offline(&self.contact, self.config.offline_limit)
    }

    /// The broker's probe: admitted only from the broker's own key, fresh, within `MAX_PROBES`.
    fn decide_probe(&self, remote: &[u8], at: u64) -> Result<Admitted, String> {
        let broker = self
            .broker
            .get()
            .ok_or("the agent does not know the broker's did")?;
        if identity::x25519_public(broker).map_or(true, |k| k != remote) {
            return Err("probes are admitted from the broker's key only".into());
        }
        let mut replay = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        let t = now_ms();
        replay.check(broker, at, t).map_err(|e| e.to_string())?;
        let slot = Slot::take(&self.sessions, PROBE_SLOT.to_string(), MAX_PROBES)
            .ok_or("a probe is already running")?;
        replay.take(broker, at, t);
        Ok(Admitted::Probe(slot))
    }

    /// Signs what this agent reports about itself for the broker's prober.
    fn attest(&self, nonce: &str) -> peering::probe::SignedAttestation {
        let (gpus, _) = discovery::gpus();
        let a = peering::probe::Attestation {
            provider: self.session.did().to_string(),
            nonce: nonce.to_string(),
            at: now(),
            workload: "sha256-1k".into(),
            ops_per_second: benchmark(),
            gpus: gpus.into_iter().map(|g| g.model).collect(),
        };
        peering::probe::SignedAttestation::sign(&self.key, &a)
    }

    fn decide(&self, remote: &[u8], hello: &[u8]) -> Decision<Admitted> {
        let refuse = |why: String| {
            Decision::Refuse(
                serde_json::to_vec(&Answer {
                    ok: false,
                    reason: why,
                })
                .unwrap_or_default(),
            )
        };
        if let Ok(p) = serde_json::from_slice::<peering::probe::ProbeHello>(hello) {
            return match self.decide_probe(remote, p.probe) {
                Ok(a) => Decision::Admit(
                    a,
                    serde_json::to_vec(&Answer {
                        ok: true,
                        reason: String::new(),
                    })
                    .unwrap_or_default(),
                ),
                Err(why) => refuse(why),
            };
        }
        let Ok(p) = serde_json::from_slice::<Presentation>(hello) else {
            return refuse("not a credential presentation".into());
        };
        if self.offline() {
            return refuse(OFFLINE.into());
        }
        let hash = secret_hash(&p.secret);
        let table = lock(&self.table);
        let Some(entry) = table.get(&hash) else {
            return refuse(Refusal::Unknown.to_string());
        };
        let key_matches = identity::x25519_public(&entry.consumer).is_ok_and(|k| k == remote);
        if !key_matches {
            return refuse(Refusal::WrongConsumer.to_string());
        }
        let admission = match table.check(&hash, &p.contract, &entry.consumer, now()) {
            Ok(a) => a.clone(),
            Err(r) => return refuse(r.to_string()),
        };
        drop(table);
        // The presentation is the consumer's, for this credential: now whether it is fresh.
        let mut replay = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        let t = now_ms();
        if let Err(stale) = replay.check(&admission.consumer, p.at, t) {
            return refuse(stale.to_string());
        }
        let Some(slot) = Slot::take(&self.sessions, hash.clone(), MAX_SESSIONS_PER_CREDENTIAL)
        else {
            return refuse(format!(
                "this credential already has {MAX_SESSIONS_PER_CREDENTIAL} sessions open"
            ));
        };
        replay.take(&admission.consumer, p.at, t);
        Decision::Admit(
            Admitted::Consumer(admission, hash, slot),
            serde_json::to_vec(&Answer {
                ok: true,
                reason: String::new(),
            })
            .unwrap_or_default(),
        )
    }

    async fn handle(
        &self,
        stream: TcpStream,
        handshake: (tokio::sync::OwnedSemaphorePermit, Slot<IpAddr>),
    ) -> Result<(), channel::ChannelError> {
        // A handshake that does not finish in time is cut (a slow or silent peer holds nothing).
        let admitted = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            channel::respond(stream, &self.key, |remote, hello| {
                self.decide(remote, hello)
            }),
        )
        .await
        .map_err(|_| {
            channel::ChannelError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the handshake did not finish in time",
            ))
        })??;
        drop(handshake);
        let (ch, admission, hash, _session_slot) = match admitted {
            None => return Ok(()),
            Some((ch, Admitted::Probe(_slot))) => {
                // Bounded in time and requests; nothing billable runs.
                let served = tokio::time::timeout(
                    PROBE_LIMIT,
                    peering::probe::serve(ch, |n| self.attest(n)),
                )
                .await;
                return served.unwrap_or(Ok(()));
            }
            Some((ch, Admitted::Consumer(a, hash, slot))) => (ch, a, hash, slot),
        };
        let session = Some(api::SessionId::from(ch.session()));
        let counters = Arc::new(Counters::default());
        let started = (now(), Instant::now());
        // Ends the session when its credential stops being valid (revoked, expired).
        let table = self.table.clone();
        let cut = Arc::new(AtomicBool::new(false));
        let (contact, limit) = (self.contact.clone(), self.config.offline_limit);
        let watch = {
            let (hash, contract, consumer) = (
                hash.clone(),
                admission.contract_id.clone(),
                admission.consumer.clone(),
            );
            let cut = cut.clone();
            async move {
                loop {
                    tokio::time::sleep(RECHECK).await;
                    if offline(&contact, limit)
                        || lock(&table)
                            .check(&hash, &contract, &consumer, now())
                            .is_err()
                    {
                        cut.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            }
        };
        let (result, used) = match &self.config.service {
            Service::Tcp(addr) => {
                let service = TcpStream::connect(addr).await?;
                let r = channel::splice(ch, service, counters.clone(), watch).await;
                (r, ProcessUsage::default())
            }
            Service::Exec(command) => {
                let p = SessionProcess::start(command)?;
                let pid = p.pid();
                let r = channel::splice_io(ch, p.stdout, p.stdin, counters.clone(), watch).await;
                let grace = if cut.load(Ordering::Relaxed) {
                    Duration::ZERO
                } else {
                    EXEC_GRACE
                };
                (r, session_process::finish(pid, grace).await)
            }
        };
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let (Ok(contract), Ok(consumer), Ok(credential)) = (
            admission.contract_id.parse(),
            admission.consumer.parse(),
            hash.parse(),
        ) else {
            tracing::error!(contract = %admission.contract_id, "admitted a session the usage record cannot name");
            return result;
        };
        let mut record = UsageRecord {
            id: identity::hex_encode(&id)
                .parse()
                .expect("32 hex digits are a record id"),
            contract,
            provider: self.session.did().clone(),
            consumer,
            credential,
            from: started.0,
            to: now(),
            connection_millis: started.1.elapsed().as_millis() as u64,
            bytes_in: counters.received.load(Ordering::Relaxed),
            bytes_out: counters.sent.load(Ordering::Relaxed),
            cpu_millis: used.cpu_millis,
            max_memory_kib: used.max_memory_kib,
            gpu_millis: 0,
            data_accesses: 0,
            session,
            signature: None,
        };
        record.sign(&self.key);
        if let Err(e) = self.usage.append(&record) {
            tracing::error!(error = %e, "cannot store a usage record");
        }
        result
    }
}
