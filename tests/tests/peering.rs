//! After a purchase the consumer reaches the provider directly: the provider's agent admits only
//! valid credentials of active contracts, keeps working while the broker is down, follows
//! rotations and revocations, and meters what passes.

use std::process::{Command, Stdio};
use std::time::Duration;

use api::usage::UsageOutcome;
use api::{ContractState, Role};
use e2e::market::{buy_by_policy, offer, ppu_offer, request, units, until_settled, Participant};
use e2e::peer::{free_port, key_file, provider_with_agent, spawn_agent, wait_port, Killed};
use e2e::{bin, eventually, eventually_some, BrokerProcess, Patience};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Round trip through a connection: what goes out comes back (the service echoes).
async fn round_trip(stream: &mut TcpStream, data: &[u8]) {
    let (mut r, mut w) = stream.split();
    let send = async {
        w.write_all(data).await.unwrap();
    };
    let mut back = vec![0u8; data.len()];
    let recv = async {
        r.read_exact(&mut back).await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(send, recv) })
        .await
        .expect("the data comes back");
    assert_eq!(back, data);
}

fn refused(e: sdk::SdkError) -> String {
    match e {
        sdk::SdkError::Api {
            status: 403,
            detail,
            ..
        } => detail,
        other => panic!("expected a refusal, got {other}"),
    }
}

/// The consumer disputes `record` once the agent has reported it.
async fn dispute_once_reported(
    consumer: &Participant,
    record: &api::UsageRecordId,
) -> api::usage::Disputed {
    eventually_some(
        "the agent to report the record",
        Patience::secs(20),
        || async {
            consumer
                .session
                .dispute_usage(record, "not what my side saw")
                .await
                .ok()
        },
    )
    .await
}

/// The agent's refusal of `credential` presented by `key`, once it refuses (`None`: admitted).
async fn dial_refusal(
    key: &ed25519_dalek::SigningKey,
    credential: &peering::Credential,
) -> Option<String> {
    sdk::credentials::dial(key, credential)
        .await
        .err()
        .map(refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_connect_directly_with_valid_credentials_only() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--credential-ttl", "600", "--credential-grace", "2"];
    let broker = BrokerProcess::start_with(&dir.path().join("broker"), &args);
    let api = broker.port;
    let url = broker.url.clone();
    let agent = provider_with_agent(&url, dir.path(), None, true).await;
    let (provider, state) = (&agent.provider, agent.state.clone());
    let consumer = Participant::new(&url, Role::Consumer).await;
    let other = Participant::new(&url, Role::Consumer).await;

    // A purchase (the agent signs it by its policy) gives the consumer a credential.
    let o = offer("peer-1", 4, 1_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let req = request(&o, 1);
    let c = buy_by_policy(&consumer, &req).await;
    assert_eq!(c.state, ContractState::Active);
    let cred_file = dir.path().join("credential.json");
    let ckey = key_file(dir.path(), "consumer.hex", consumer.session.key());
    let written: serde_json::Value = e2e::mercato(
        &url,
        &[
            "--json",
            "--key-file",
            ckey.to_str().unwrap(),
            "credentials",
            "get",
            &c.id.to_string(),
            "--out",
            cred_file.to_str().unwrap(),
        ],
    )
    .json();
    assert_eq!(written["contract"], c.id.to_string());
    let credential: peering::Credential =
        serde_json::from_str(&std::fs::read_to_string(&cred_file).unwrap()).unwrap();
    assert_eq!(credential.consumer_key, consumer.did().to_string());
    // Only the consumer reads it; the broker has no plaintext secret.
    let err = other.session.credentials(c.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    let err = provider.session.credentials(c.id).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    let db = std::fs::read(dir.path().join("broker").join("broker.sqlite")).unwrap();
    assert!(
        !db.windows(credential.secret.len())
            .any(|w| w == credential.secret.as_bytes()),
        "the secret is not in the broker's database"
    );

    // `mercato connect` with the credential file: data both ways, straight to the provider.
    let local = free_port();
    let _connect = Killed(
        Command::new(bin("mercato"))
            .args([
                "--broker",
                &url,
                "--key-file",
                ckey.to_str().unwrap(),
                "connect",
                &c.id.to_string(),
            ])
            .args(["--local", &format!("127.0.0.1:{local}")])
            .arg("--credential")
            .arg(&cred_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(local).await;
    let mut live = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
    round_trip(&mut live, b"hello provider").await;
    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    round_trip(&mut live, &big).await;

    // The broker stops: the live connection and new connections keep working.
    broker.stop();
    round_trip(&mut live, b"still here").await;
    let mut fresh = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
    round_trip(&mut fresh, b"new connection, no broker").await;
    drop(fresh);
    let broker = BrokerProcess::start_on(api, &dir.path().join("broker"), &args, &[]);

    // Refusals: a tampered secret, another consumer presenting this credential.
    let mut tampered = credential.clone();
    tampered.secret = "00".repeat(32);
    let why = refused(
        sdk::credentials::dial(consumer.session.key(), &tampered)
            .await
            .err()
            .unwrap(),
    );
    assert!(why.contains("unknown"), "{why}");
    let why = refused(
        sdk::credentials::dial(other.session.key(), &credential)
            .await
            .err()
            .unwrap(),
    );
    assert!(why.contains("another consumer"), "{why}");
    assert!(sdk::credentials::dial(consumer.session.key(), &credential)
        .await
        .is_ok());

    // A presentation is taken once: the same again (a replayed handshake) is refused, and so is
    // one far from the provider's clock.
    let at = sdk::credentials::presentation_time();
    assert!(
        sdk::credentials::dial_at(consumer.session.key(), &credential, at)
            .await
            .is_ok()
    );
    let why = refused(
        sdk::credentials::dial_at(consumer.session.key(), &credential, at)
            .await
            .err()
            .unwrap(),
    );
    assert!(why.contains("replayed"), "{why}");
    let late = at + 2 * peering::replay::PRESENTATION_SKEW_MS;
    let why = refused(
        sdk::credentials::dial_at(consumer.session.key(), &credential, late)
            .await
            .err()
            .unwrap(),
    );
    assert!(why.contains("clock"), "{why}");

    // A dishonest broker's envelopes: one not signed by the broker the consumer pinned, and one
    // the broker signed but that names another provider node than the signed contract; the
    // consumer's SDK opens neither.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("broker").join("broker.sqlite").display()
    ))
    .await
    .unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT hash, sealed FROM credentials WHERE contract_id = $1")
            .bind(c.id.to_string())
            .fetch_all(&db)
            .await
            .unwrap();
    let broker_key =
        identity::keyfile::load(&dir.path().join("broker").join("identity.hex")).unwrap();
    let mut elsewhere = credential.clone();
    elsewhere.provider_node_id =
        identity::did_of(&identity::generate().verifying_key()).to_string();
    for (signer, expected) in [(identity::generate(), "signed"), (broker_key, "provider")] {
        let forged = peering::seal(&elsewhere, consumer.did().as_str(), &signer).unwrap();
        sqlx::query("UPDATE credentials SET sealed = $1 WHERE contract_id = $2")
            .bind(serde_json::to_string(&forged).unwrap())
            .bind(c.id.to_string())
            .execute(&db)
            .await
            .unwrap();
        let err = consumer.session.credential(c.id).await.unwrap_err();
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
    for (hash, sealed) in rows {
        sqlx::query("UPDATE credentials SET sealed = $1 WHERE hash = $2")
            .bind(sealed)
            .bind(hash)
            .execute(&db)
            .await
            .unwrap();
    }
    assert_eq!(
        consumer.session.credential(c.id).await.unwrap().secret,
        credential.secret
    );

    // Consumer-signed receipts: what the consumer's end of a session saw, evidence against a
    // record of that session that claims more.
    let mut ch = sdk::credentials::dial(consumer.session.key(), &credential)
        .await
        .unwrap();
    let session = ch.session();
    let started = std::time::Instant::now();
    ch.send(b"receipted").await.unwrap();
    assert_eq!(ch.recv().await.unwrap().unwrap(), b"receipted");
    drop(ch);
    let seen = peering::channel::Counters::default();
    seen.sent.store(9, std::sync::atomic::Ordering::Relaxed);
    seen.received.store(9, std::sync::atomic::Ordering::Relaxed);
    let key = consumer.session.key();
    let receipt =
        sdk::credentials::receipt(key, &credential, session, &seen, started.elapsed(), true)
            .unwrap();
    assert!(
        consumer
            .session
            .submit_receipt(&receipt)
            .await
            .unwrap()
            .replaced
    );
    // An older receipt of the session does not replace it; a changed one is refused.
    let mut older = receipt.clone();
    older.at -= 1;
    older.sign(key);
    assert!(
        !consumer
            .session
            .submit_receipt(&older)
            .await
            .unwrap()
            .replaced
    );
    let mut changed = receipt.clone();
    changed.bytes_sent = 0;
    let err = consumer.session.submit_receipt(&changed).await.unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("not signed"), "{err}");
    // The agent's record of the session names it; the provider reports an inflated copy.
    let session_id = api::SessionId::from(session);
    let metered = agent::metering::UsageLog::new(&state);
    let honest = eventually_some("the session's record", Patience::secs(10), || async {
        metered
            .read()
            .unwrap()
            .into_iter()
            .find(|r| r.session == Some(session_id))
    })
    .await;
    assert_eq!((honest.bytes_in, honest.bytes_out), (9, 9));
    // Once the agent reported it, the consumer's dispute finds its receipt agreeing.
    let d = dispute_once_reported(&consumer, &honest.id).await;
    assert!(d.evidence.unwrap_or_default().contains("agrees"));
    // An inflated copy with a fresh id charges the session no second time.
    let mut inflated = honest.clone();
    inflated.id = "inflated-1".parse().unwrap();
    inflated.bytes_in = 9 + api::usage::RECEIPT_SLACK_BYTES + 1;
    inflated.sign(provider.session.key());
    let out = provider
        .session
        .report_usage(std::slice::from_ref(&inflated))
        .await
        .unwrap();
    assert_eq!(out[0].status, UsageOutcome::Refused, "{out:?}");
    assert!(
        out[0].reason.as_deref().unwrap_or("").contains("session"),
        "{out:?}"
    );
    // Where a session's record and the consumer's last receipt disagree beyond what frames in
    // flight explain, the dispute names both figures (here the consumer's side under-counts;
    // an inflated record shows the same way: `api::usage` unit test).
    let mut ch = sdk::credentials::dial(consumer.session.key(), &credential)
        .await
        .unwrap();
    let session = ch.session();
    let payload = vec![7u8; 600_000];
    ch.send(&payload).await.unwrap();
    let mut got = 0;
    while got < payload.len() {
        got += ch.recv().await.unwrap().unwrap().len();
    }
    drop(ch);
    let seen = peering::channel::Counters::default();
    seen.sent.store(1_000, std::sync::atomic::Ordering::Relaxed);
    seen.received
        .store(1_000, std::sync::atomic::Ordering::Relaxed);
    let low = sdk::credentials::receipt(key, &credential, session, &seen, started.elapsed(), true)
        .unwrap();
    consumer.session.submit_receipt(&low).await.unwrap();
    let session_id = api::SessionId::from(session);
    let record = eventually_some(
        "the second session's record",
        Patience::secs(10),
        || async {
            metered
                .read()
                .unwrap()
                .into_iter()
                .find(|r| r.session == Some(session_id))
        },
    )
    .await;
    let d = dispute_once_reported(&consumer, &record.id).await;
    let evidence = d.evidence.unwrap_or_default();
    assert!(
        evidence.contains("600000 bytes in") && evidence.contains("signed receipt 1000"),
        "{evidence}"
    );
    // The evidence stays with the record for whoever decides the dispute.
    let listed = consumer.session.usage(c.id).await.unwrap();
    let kept = listed
        .records
        .iter()
        .find(|u| u.record.id == record.id)
        .unwrap();
    assert_eq!(kept.dispute_evidence.as_deref(), Some(evidence.as_str()));

    // A dishonest broker's admissions, written straight into its outbox: one it signed that
    // names another consumer than the contract's, one naming the right consumer but not signed
    // by the broker the agent pinned. The agent admits neither (the renewal below is announced
    // after them, so once it is admitted they have been read).
    let now = broker::store::now();
    let forge = |consumer: &identity::Did, signer: &ed25519_dalek::SigningKey| {
        let secret = identity::hex_encode(&rand::random::<[u8; 32]>());
        let hash: api::CredentialHash = peering::envelope::secret_hash(&secret).parse().unwrap();
        let text =
            api::events::CredentialIssued::admission_text(c.id, &hash, consumer, now, now + 600);
        let issued = api::events::CredentialIssued {
            contract: c.id,
            hash,
            version: 90,
            consumer: consumer.clone(),
            not_before: now,
            expires_at: now + 600,
            broker_signature: api::Ed25519Signature::sign(
                signer,
                identity::Domain::Admission,
                text.as_bytes(),
            ),
        };
        let mut cred = credential.clone();
        cred.secret = secret;
        (serde_json::to_string(&issued).unwrap(), cred)
    };
    let broker_key =
        identity::keyfile::load(&dir.path().join("broker").join("identity.hex")).unwrap();
    let (to_other, other_cred) = forge(&other.did(), &broker_key);
    let (unsigned, unsigned_cred) = forge(&consumer.did(), &identity::generate());
    for payload in [to_other, unsigned] {
        sqlx::query(
            "INSERT INTO outbox (topic, subject, audience, payload, at) VALUES ('credential.issued', $1, $2, $3, $4)",
        )
        .bind(c.id.to_string())
        .bind(format!("{},{}", other.did(), provider.did()))
        .bind(payload)
        .bind(now as i64)
        .execute(&db)
        .await
        .unwrap();
    }

    // Rotation: the new credential works; the old one for the grace period, then no more.
    let renewed = consumer.session.renew_credential(c.id).await.unwrap();
    assert_ne!(renewed.secret, credential.secret);
    eventually(
        "the agent to learn the new credential",
        Patience::secs(10),
        || async {
            dial_refusal(consumer.session.key(), &renewed)
                .await
                .is_none()
        },
    )
    .await;
    let why = eventually_some(
        "the old credential's grace to end",
        Patience::secs(10),
        || async { dial_refusal(consumer.session.key(), &credential).await },
    )
    .await;
    assert!(why.contains("expired"), "{why}");
    assert!(sdk::credentials::dial(consumer.session.key(), &renewed)
        .await
        .is_ok());
    // The agent read both (its cursor is past them) and admitted neither.
    let forged_seq: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM outbox WHERE topic = 'credential.issued' AND payload LIKE '%\"version\":90%'")
        .fetch_one(&db)
        .await
        .unwrap();
    let table: peering::AdmissionTable =
        serde_json::from_slice(&std::fs::read(state.join("admission.json")).unwrap()).unwrap();
    assert!(table.cursor >= forged_seq as u64, "cursor {}", table.cursor);
    for forged in [&other_cred, &unsigned_cred] {
        assert!(table.get(&forged.hash()).is_none());
    }
    let why = dial_refusal(other.session.key(), &other_cred).await;
    assert!(
        why.is_some_and(|w| w.contains("unknown")),
        "another consumer admitted"
    );
    let why = dial_refusal(consumer.session.key(), &unsigned_cred).await;
    assert!(
        why.is_some_and(|w| w.contains("unknown")),
        "an unsigned admission taken"
    );

    // A flood of handshakes that never finish: beyond the per-source cap they are closed at
    // once, the others are cut at the handshake timeout; then a consumer connects again.
    let addr = renewed.agent_address().unwrap();
    let mut idle = Vec::new();
    for _ in 0..agent::MAX_HANDSHAKES_PER_SOURCE + 8 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let mut refused_at_once = 0;
    for s in idle.iter_mut().skip(agent::MAX_HANDSHAKES_PER_SOURCE) {
        // Well before the timeout: refused, not cut.
        if closed(s, agent::HANDSHAKE_TIMEOUT / 2).await {
            refused_at_once += 1;
        }
    }
    assert_eq!(refused_at_once, 8);
    for s in idle.iter_mut().take(agent::MAX_HANDSHAKES_PER_SOURCE) {
        assert!(
            closed(s, agent::HANDSHAKE_TIMEOUT * 3).await,
            "cut at the timeout"
        );
    }
    let fresh = consumer.session.credential(c.id).await.unwrap();
    let mut ch = eventually_some("a session after the flood", Patience::secs(30), || async {
        sdk::credentials::dial(consumer.session.key(), &fresh)
            .await
            .ok()
    })
    .await;
    ch.send(b"after").await.unwrap();
    assert_eq!(ch.recv().await.unwrap().unwrap(), b"after");

    // Revocation: closing the contract ends live sessions and refuses new ones within seconds.
    consumer.session.close(c.id).await.unwrap();
    let why = eventually_some(
        "the revoked credential to be refused",
        Patience::secs(10),
        || async { dial_refusal(consumer.session.key(), &renewed).await },
    )
    .await;
    assert!(why.contains("revoked"), "{why}");
    // The old live connection (first credential) is cut too, within the agent's re-check.
    let _ = live.write_all(b"x").await;
    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 64];
        // What is still in flight may come back first; then the end.
        loop {
            match live.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the live session was not cut");

    // Every session was metered: signed records with the bytes that passed.
    let log = agent::metering::UsageLog::new(&state);
    let usage = eventually_some(
        "the sessions' usage records",
        Patience::secs(10),
        || async {
            let usage = log.read().unwrap();
            let total: u64 = usage.iter().map(|u| u.bytes_in).sum();
            (total >= big.len() as u64).then_some(usage)
        },
    )
    .await;
    assert!(usage.iter().all(|u| u.verify() && u.contract == c.id));

    broker.stop();
}

/// The agent sells this machine (discovered resources), catches up on what happened while it was
/// offline, and runs metered compute sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_sells_this_machine_catches_up_and_meters_compute_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("broker"));
    let url = broker.url.clone();
    let provider = Participant::new(&url, Role::Provider).await;
    let consumer = Participant::new(&url, Role::Consumer).await;
    let agent_port = free_port();
    let config = format!(
        "name: edge-2\nendpoints:\n  - name: agent\n    url: tcp://127.0.0.1:{agent_port}\n"
    );
    provider
        .session
        .register_config(&provider.evm, &config)
        .await
        .unwrap();
    let pkey = key_file(dir.path(), "provider.hex", provider.session.key());
    let p = pkey.to_str().unwrap();

    // Discovery, and an offer of this machine from a plan template.
    let found: serde_json::Value =
        e2e::mercato(&url, &["--json", "--key-file", p, "agent", "discover"]).json();
    let cores = found["cores"].as_u64().unwrap();
    assert!(
        cores >= 1 && found["memoryMib"].as_u64().unwrap() > 0,
        "{found}"
    );
    if found["gpus"].as_array().unwrap().is_empty() {
        assert!(
            !found["gpuNote"].as_str().unwrap().is_empty(),
            "no GPU says why"
        );
    }
    let sample = offer("machine-1", 1, 5_000);
    let mut plan = serde_json::to_value(&sample.plans[0]).unwrap();
    plan["unit"] = serde_json::json!({"cpuMillicores": 1000, "memoryMib": 256});
    let template = serde_json::json!({
        "id": "machine-1", "name": "this machine", "location": sample.location, "plans": [plan],
    });
    let file = dir.path().join("template.json");
    std::fs::write(&file, template.to_string()).unwrap();
    e2e::mercato(
        &url,
        &["--key-file", p, "agent", "publish", file.to_str().unwrap()],
    )
    .out();
    let published = sdk::Client::new(&url)
        .unwrap()
        .offer(&"machine-1".parse().unwrap())
        .await
        .unwrap()
        .offer;
    assert_eq!(
        published.resources.compute.as_ref().unwrap().cpu_millicores,
        cores * 1000
    );
    assert_eq!(published.provider, provider.did().to_string());

    // Bought while the agent is offline (the provider signs by hand).
    let req = request(&published, 1);
    let r = consumer.session.reserve(&req).await.unwrap();
    let c = consumer
        .session
        .purchase(&req, &r, &consumer.evm, "offline")
        .await
        .unwrap();
    provider.session.accept(c.id).await.unwrap();
    until_settled(&consumer, c.id).await;
    let credential = consumer.session.credential(c.id).await.unwrap();

    // The agent starts afterwards, catches up, and runs a compute session per connection.
    let state = dir.path().join("agent");
    let burn = "cat; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";
    let _agent = spawn_agent(
        &url,
        pkey.as_path(),
        agent_port,
        &["--exec", burn, "--offline-limit", "12"],
        &state,
        false,
    )
    .await;
    let mut ch = eventually_some(
        "the agent to catch up with the contract bought while it was offline",
        Patience::secs(20),
        || async {
            sdk::credentials::dial(consumer.session.key(), &credential)
                .await
                .ok()
        },
    )
    .await;
    ch.send(b"compute this").await.unwrap();
    assert_eq!(ch.recv().await.unwrap().unwrap(), b"compute this");
    drop(ch);
    let usage = agent::metering::UsageLog::new(&state);
    let records = eventually_some("the session to be metered", Patience::secs(20), || async {
        let records = usage.read().unwrap();
        (!records.is_empty()).then_some(records)
    })
    .await;
    let r = &records[0];
    assert!(r.verify());
    assert_eq!((r.contract, r.bytes_in, r.bytes_out), (c.id, 12, 12));
    assert!(r.cpu_millis > 10 && r.max_memory_kib > 0, "{r:?}");

    // Cut from the broker for longer than its offline limit (12 s here), the agent admits no
    // new session: a revocation it cannot hear of holds that long at most.
    let mut live = sdk::credentials::dial(consumer.session.key(), &credential)
        .await
        .unwrap();
    broker.stop();
    let why = eventually_some(
        "the agent to refuse sessions once offline too long",
        Patience::secs(40),
        || async { dial_refusal(consumer.session.key(), &credential).await },
    )
    .await;
    assert!(why.contains("offline limit"), "{why}");
    // And the session that was running ends too.
    let ended = tokio::time::timeout(Duration::from_secs(10), live.recv()).await;
    assert!(matches!(ended, Ok(Ok(None)) | Ok(Err(_))), "{ended:?}");
}

/// A consumer's session turns into signed usage records, a settled batch on chain (the contract
/// charged exactly the priced usage), and records anyone party to it can prove.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_become_usage_records_settled_in_a_batch_on_chain() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(
        &dir.path().join("broker"),
        &["--settle-interval", "1", "--dispute-window", "0"],
    );
    let url = broker.url.clone();
    let agent = provider_with_agent(&url, dir.path(), None, true).await;
    let (provider, state, pkey) = (&agent.provider, agent.state.clone(), agent.key.clone());
    let consumer = Participant::new(&url, Role::Consumer).await;
    // Pay per use: 10 credits per GB of traffic.
    let o = ppu_offer("ppu-1", 2, 1_000_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let mut req = request(&o, 1);
    req.deposit = Some(units(500_000_000));
    let c = buy_by_policy(&consumer, &req).await;
    assert_eq!(c.state, ContractState::Active);
    let credential = consumer.session.credential(c.id).await.unwrap();

    // Two sessions, 1 MB each way each.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    for _ in 0..2 {
        let mut ch = sdk::credentials::dial(consumer.session.key(), &credential)
            .await
            .unwrap();
        ch.send(&data).await.unwrap();
        let mut got = 0;
        while got < data.len() {
            got += ch.recv().await.unwrap().unwrap().len();
        }
    }

    // The agent reports them; the broker prices and settles them in a batch.
    let usage = eventually_some(
        "both sessions to be settled",
        Patience::secs(30),
        || async {
            let usage = consumer.session.usage(c.id).await.unwrap();
            (usage.records.len() == 2 && usage.records.iter().all(|r| r.batch_id.is_some()))
                .then_some(usage)
        },
    )
    .await;
    // 2 sessions × 2 MB through at 10 credits (10^9 base units) per GB.
    assert_eq!(usage.total, units(4_000_000));
    assert_eq!(usage.settled, usage.total);
    // The chain charged exactly that.
    let shown = consumer.session.contract(c.id).await.unwrap();
    assert_eq!(shown.chain.unwrap().charged, units(4_000_000));
    // The unit prices the consumer signed, from the contract document.
    let doc = api::document::ContractDocument::parse(
        shown.document.as_ref().expect("the document").as_bytes(),
    )
    .unwrap();
    let signed_prices = doc.usage.expect("a usage bound").prices;
    // Every record is proven part of its batch, here and by the chain.
    let ckey = key_file(dir.path(), "consumer.hex", consumer.session.key());
    for r in &usage.records {
        let id = r.record.id.to_string();
        let answer = e2e::mercato(
            &url,
            &["--key-file", ckey.to_str().unwrap(), "usage", "prove", &id],
        );
        assert!(
            answer
                .out()
                .contains("proof verifies here, verified on chain"),
            "{answer:?}"
        );
        let proof: api::usage::UsageProof = e2e::mercato(
            &url,
            &[
                "--json",
                "--key-file",
                ckey.to_str().unwrap(),
                "usage",
                "prove",
                &id,
            ],
        )
        .json();
        assert!(proof.verified_on_chain);
        // What the proof gives is all a challenge needs; on an honest batch the chain finds
        // nothing to give back.
        let refusal = broker
            .challenge_record(&proof, &r.record, &signed_prices)
            .await
            .expect_err("an honest leaf is no overcharge");
        assert!(refusal.contains("NoOvercharge"), "{refusal}");
    }
    // The statement lists the settled usage and agrees with the chain to the last unit.
    let statement = consumer.session.statement(c.id).await.unwrap();
    assert_eq!(statement.charged, units(4_000_000), "{statement:?}");
    assert!(statement.matches_chain, "{statement:?}");
    assert!(statement
        .lines
        .iter()
        .any(|l| l.kind == api::usage::LineKind::Usage));
    let csv = provider.session.statement_csv(c.id).await.unwrap();
    assert!(
        csv.starts_with("at,kind,reference,amount\n") && csv.contains(",usage,"),
        "{csv}"
    );
    // Nothing is the provider's while the charge can be challenged; after the window (60 s on
    // the development chain) the broker releases it.
    let net = statement.provider_net;
    let marketplace = sdk::Client::new(&url)
        .unwrap()
        .ledger()
        .await
        .unwrap()
        .contracts
        .marketplace;
    let account = provider.evm.address();
    assert_eq!(
        broker.earnings(marketplace, account).await,
        alloy::primitives::U256::ZERO
    );
    broker.advance_chain(61).await;
    eventually("the charges to be released", Patience::secs(30), || async {
        broker.earnings(marketplace, account).await
            == alloy::primitives::U256::from(net.base_units())
    })
    .await;
    // The provider withdraws its earnings (the charge less the broker's fee) with its own account.
    provider.session.faucet().await.unwrap();
    let before = provider.credits().await;
    std::fs::write(
        dir.path().join("evm-provider.hex"),
        identity::hex_encode(provider.evm.to_bytes().as_slice()),
    )
    .unwrap();
    let withdrawn: serde_json::Value = e2e::mercato(
        &url,
        &[
            "--json",
            "--key-file",
            pkey.to_str().unwrap(),
            "provider",
            "withdraw",
        ],
    )
    .json();
    assert_eq!(withdrawn["amount"], net.to_string());
    assert_eq!(provider.credits().await, before.checked_add(net).unwrap());

    // A record the provider reports again is a duplicate, never charged twice; a changed one
    // with the same id, or one claiming more than the plan, is refused.
    let log = agent::metering::UsageLog::new(&state).read().unwrap();
    let again = provider.session.report_usage(&log).await.unwrap();
    assert!(
        again.iter().all(|o| o.status == UsageOutcome::Duplicate),
        "{again:?}"
    );
    let mut forged = log[0].clone();
    forged.bytes_in += 1;
    forged.sign(provider.session.key());
    let out = provider.session.report_usage(&[forged]).await.unwrap();
    assert_eq!(out[0].status, UsageOutcome::Refused);
    let mut greedy = log[0].clone();
    greedy.id = "greedy-1".parse().unwrap();
    greedy.cpu_millis = 10_000_000;
    greedy.sign(provider.session.key());
    let out = provider.session.report_usage(&[greedy]).await.unwrap();
    assert!(out[0].reason.as_deref().unwrap().contains("CPU"), "{out:?}");
    let mut unsigned = log[0].clone();
    unsigned.id = "unsigned-1".parse().unwrap();
    unsigned.signature = None;
    let out = provider.session.report_usage(&[unsigned]).await.unwrap();
    assert!(
        out[0].reason.as_deref().unwrap().contains("signature"),
        "{out:?}"
    );
    // A record must name a credential issued for its contract, within its validity.
    let mut stranger = log[0].clone();
    stranger.id = "no-credential-1".parse().unwrap();
    stranger.credential = "cd".repeat(32).parse().unwrap();
    stranger.sign(provider.session.key());
    let out = provider.session.report_usage(&[stranger]).await.unwrap();
    assert!(
        out[0].reason.as_deref().unwrap().contains("credential"),
        "{out:?}"
    );
    let mut early = log[0].clone();
    early.id = "before-credential-1".parse().unwrap();
    early.from = credential.not_before.saturating_sub(1_000);
    early.sign(provider.session.key());
    let out = provider.session.report_usage(&[early]).await.unwrap();
    assert_eq!(out[0].status, UsageOutcome::Refused, "{out:?}");
    // A full report (an agent catching up) is read and answered record by record; one more
    // record is refused whole.
    let full: Vec<_> = (0..api::usage::MAX_RECORDS_PER_REPORT)
        .map(|i| {
            let mut r = log[0].clone();
            r.id = format!("catching-up-{i:0>52}").parse().unwrap();
            // Each its own session, as an agent's records are.
            r.session = Some(format!("0x{i:064x}").parse().unwrap());
            r.sign(provider.session.key());
            r
        })
        .collect();
    let out = provider.session.report_usage(&full).await.unwrap();
    assert_eq!(out.len(), full.len());
    let mut over = full;
    over.push(log[0].clone());
    let refused = provider.session.report_usage(&over).await.unwrap_err();
    assert!(refused.to_string().contains("at most"), "{refused}");

    // Records that each fit their own interval but together claim more than the plan allows
    // since the contract opened (one core: connection time side by side) are refused.
    let now = broker::store::now();
    let mut refusals = Vec::new();
    for i in 0..4 {
        let mut wide = log[0].clone();
        wide.id = format!("overlap-{i}").parse().unwrap();
        wide.from = credential.not_before;
        wide.to = now + 100;
        wide.connection_millis = (wide.to - wide.from) * 1000;
        wide.bytes_in = 0;
        wide.bytes_out = 0;
        // Sessions of their own (a copy of a session's record is refused as such).
        wide.session = None;
        wide.sign(provider.session.key());
        let out = provider.session.report_usage(&[wide]).await.unwrap();
        refusals.extend(out[0].reason.clone());
    }
    assert!(
        refusals
            .iter()
            .any(|r| r.contains("connection time") && r.contains("since the contract opened")),
        "{refusals:?}"
    );

    // Closing settles what was reported first (up to the escrow); the statement still agrees
    // with the chain; a record reported after the close is refused.
    consumer.session.close(c.id).await.unwrap();
    let closed = e2e::market::until_closed(&consumer, c.id).await;
    assert_eq!(closed.state, ContractState::Closed);
    let usage = consumer.session.usage(c.id).await.unwrap();
    let statement = consumer.session.statement(c.id).await.unwrap();
    assert!(statement.matches_chain, "{statement:?}");
    assert_eq!(statement.chain_charged, usage.settled, "{statement:?}");
    assert!(
        usage.settled > units(4_000_000),
        "the reported records were paid at the close"
    );
    let mut late = log[0].clone();
    late.id = "after-close-1".parse().unwrap();
    late.sign(provider.session.key());
    let out = provider.session.report_usage(&[late]).await.unwrap();
    assert!(
        out[0].reason.as_deref().unwrap().contains("closed"),
        "{out:?}"
    );
    broker.stop();
}

/// Whether the peer closes `s` within `within`.
async fn closed(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1];
    tokio::time::timeout(within, s.read(&mut b))
        .await
        .is_ok_and(|r| matches!(r, Ok(0) | Err(_)))
}

/// An operator's revocation sticks: no credential is issued again (not by the keeper, a
/// consumer's read or renewal, or a broker restart) until an operator releases the hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_revocation_holds_until_released() {
    let dir = tempfile::tempdir().unwrap();
    let op_key = identity::generate();
    let op_did = identity::did_of(&op_key.verifying_key()).to_string();
    let args = ["--operator", op_did.as_str()];
    let broker = BrokerProcess::start_with(&dir.path().join("broker"), &args);
    let (url, api) = (broker.url.clone(), broker.port);
    let operator = sdk::Session::new(sdk::Client::new(&url).unwrap(), op_key);
    let agent = provider_with_agent(&url, dir.path(), None, true).await;
    let consumer = Participant::new(&url, Role::Consumer).await;
    let o = offer("hold-1", 2, 1_000);
    agent
        .provider
        .session
        .publish_offer(o.clone())
        .await
        .unwrap();
    let c = buy_by_policy(&consumer, &request(&o, 1)).await;
    let credential = eventually_some("a credential", Patience::secs(30), || async {
        consumer.session.credential(c.id).await.ok()
    })
    .await;
    eventually_some("the agent to admit it", Patience::secs(30), || async {
        sdk::credentials::dial(consumer.session.key(), &credential)
            .await
            .ok()
    })
    .await;

    operator.revoke_credentials(c.id).await.unwrap();
    let why = eventually_some(
        "the revoked credential refused",
        Patience::secs(30),
        || async { dial_refusal(consumer.session.key(), &credential).await },
    )
    .await;
    assert!(why.contains("revoked"), "{why}");
    let held = |e: sdk::SdkError| {
        let text = e.to_string();
        assert!(text.contains("holds them"), "{text}");
    };
    held(consumer.session.credential(c.id).await.unwrap_err());
    held(consumer.session.renew_credential(c.id).await.unwrap_err());
    // A restart changes nothing.
    broker.stop();
    let broker = BrokerProcess::start_on(api, &dir.path().join("broker"), &args, &[]);
    held(consumer.session.credential(c.id).await.unwrap_err());
    assert!(dial_refusal(consumer.session.key(), &credential)
        .await
        .is_some());

    // Released by an operator: a new credential, and it works.
    operator.release_credentials(c.id).await.unwrap();
    let fresh = consumer.session.credential(c.id).await.unwrap();
    assert_ne!(fresh.secret, credential.secret);
    eventually_some(
        "the new credential admitted",
        Patience::secs(30),
        || async {
            sdk::credentials::dial(consumer.session.key(), &fresh)
                .await
                .ok()
        },
    )
    .await;
    broker.stop();
}
