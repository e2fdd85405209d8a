//! Certified metrics end to end: the broker probes a provider's agent, issues W3C credentials,
//! anchors them on chain and lets the catalog filter by them; `mercato certs verify` and an
//! independent implementation (Digital Bazaar's, in Node) verify them without the broker and
//! refuse every bad copy; revocation shows in the status list and on chain; an agent that stops
//! answering loses what it was certified for.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use api::certificates::{Certificate, CertificateState};
use api::Role;
use e2e::market::{offer, Participant};
use e2e::peer::provider_with_agent;
use e2e::{eventually, eventually_some, mercato, BrokerProcess, Patience};
use serde_json::Value;

const PROBE_INTERVAL: &str = "2";

/// The independent verifier: `node tests/vc/verify.mjs FILE [--status-list LIST]`.
fn node_verify(file: &Path, list: Option<&Path>) -> (bool, Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("vc/verify.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(script).arg(file);
    if let Some(l) = list {
        cmd.arg("--status-list").arg(l);
    }
    let out = cmd.output().expect("run node");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!(
            "the verifier printed no JSON ({e}): {line}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), v)
}

fn valid_metrics(items: &[Certificate]) -> HashSet<String> {
    items
        .iter()
        .filter(|c| c.state == CertificateState::Valid)
        .map(|c| c.metric.clone())
        .collect()
}

async fn fetch(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_probed_certified_filtered_verified_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let op_key = identity::generate();
    let op_did = identity::did_of(&op_key.verifying_key()).to_string();
    let data = dir.path().join("broker");
    let broker = BrokerProcess::start_with(
        &data,
        &["--probe-interval", PROBE_INTERVAL, "--operator", &op_did],
    );
    let url = broker.url.clone();
    let client = sdk::Client::new(&url).unwrap();
    let operator = sdk::Session::new(client.clone(), op_key);
    let broker_did = client.ledger().await.unwrap().broker_did.to_string();
    let registry = client
        .ledger()
        .await
        .unwrap()
        .contracts
        .credential_registry
        .to_string();

    let agent = provider_with_agent(&url, dir.path(), None, true).await;
    let provider = agent.provider.did();
    let o = offer("cert-1", 2, 1_000_000);
    agent
        .provider
        .session
        .publish_offer(o.clone())
        .await
        .unwrap();
    // A provider whose offer declares excellent figures it never proved, with no agent.
    let boaster = Participant::new(&url, Role::Provider).await;
    let mut b = offer("boast-1", 2, 1_000_000);
    b.declared_metrics = vec![catalog::model::CertifiedMetric {
        kind: catalog::model::MetricKind::LatencyMs,
        value: 0.1,
        issuer: broker_did.clone(),
        credential: "0xfeed".into(),
        valid_until: None,
    }];
    boaster.session.publish_offer(b).await.unwrap();

    // The prober finds the agent: latency, uptime, throughput, a verified provider, and the
    // agent's attestation (it sells compute), each anchored.
    let certs = eventually_some(
        "the provider's certificates",
        Patience::secs(60),
        || async {
            let l = client.certificates(Some(&provider), false).await.ok()?;
            let m = valid_metrics(&l.items);
            [
                "latency",
                "uptime",
                "throughput",
                "verified-provider",
                "attested",
            ]
            .iter()
            .all(|x| m.contains(*x))
            .then_some(l.items)
        },
    )
    .await;
    let latency = certs
        .iter()
        .find(|c| c.metric == "latency")
        .unwrap()
        .clone();
    assert!(latency.measured_by_issuer);
    assert_eq!(latency.issuer.to_string(), broker_did);
    assert!(latency.anchor_tx.is_some());
    let attested = certs.iter().find(|c| c.metric == "attested").unwrap();
    assert!(!attested.measured_by_issuer, "{attested:?}");
    assert!(
        attested.summary.starts_with("provider-attested"),
        "{}",
        attested.summary
    );

    // The catalog: the certified provider matches certified filters, the boaster's declared
    // figures count for nothing.
    let search = |q: String| {
        let client = client.clone();
        async move {
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect();
            let q = catalog::params::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .unwrap();
            client.search_offers(&q).await.unwrap()
        }
    };
    let page = search("maxCertifiedLatencyMs=1000&verified=true&limit=50".into()).await;
    assert!(
        page.items.iter().all(|i| i.provider == provider),
        "{page:?}"
    );
    assert!(!page.items.is_empty());
    let item = &page.items[0];
    assert!(item.verified_provider);
    assert!(item
        .certified_metrics
        .iter()
        .any(|m| m.kind == catalog::model::MetricKind::LatencyMs && m.credential == latency.id));
    let boast = search(format!("provider={}", boaster.did())).await;
    assert_eq!(boast.items.len(), 1);
    assert!(boast.items[0].certified_metrics.is_empty());
    assert_eq!(boast.items[0].declared_metrics.len(), 1);
    let other_issuer = identity::did_of(&identity::generate().verifying_key());
    assert_eq!(search(format!("certifiedBy={other_issuer}")).await.total, 0);
    assert!(search(format!("certifiedBy={broker_did}")).await.total >= 1);
    let rep = client.reputation(&provider).await.unwrap();
    assert!(rep.components.verified_provider);
    assert!(rep.components.certified_uptime_30d.is_some());

    // Anyone verifies, without the broker: the CLI (offline checks, the status list, the anchor
    // on chain) and an independent implementation.
    let file = dir.path().join("latency.json");
    let f = file.to_str().unwrap();
    mercato(&url, &["certs", "show", &latency.id, "--out", f]).out();
    let chain = broker.chain_url();
    let verify = |file: &str, extra: &[&str]| {
        let mut args = vec!["--json", "certs", "verify", file, "--trust", &broker_did];
        args.extend_from_slice(extra);
        mercato(&url, &args)
    };
    let ok: Value = verify(f, &["--rpc-url", &chain, "--registry", &registry]).json();
    assert_eq!(ok["valid"], true, "{ok}");
    let checks: Vec<&str> = ok["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "passed")
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    for c in ["proof", "validity", "issuer", "status", "anchor"] {
        assert!(checks.contains(&c), "{c} did not pass: {ok}");
    }
    let list_file = dir.path().join("status.json");
    let list_url = format!("{url}/v1/certs/status");
    std::fs::write(&list_file, fetch(&list_url).await.to_string()).unwrap();
    let (passed, v) = node_verify(&file, Some(&list_file));
    assert!(passed, "the independent verifier refused it: {v}");

    // Bad copies: each refused with the check that failed, by both implementations.
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        p
    };
    let mut tampered = doc.clone();
    tampered["credentialSubject"]["latencyP50Micros"] = 1.into();
    let tampered = write("tampered.json", &tampered);
    let failed = |a: e2e::Answer, check: &str| {
        assert!(!a.ok, "verify passed: {}", a.stdout);
        let v: Value = serde_json::from_str(&a.stdout).unwrap();
        assert!(
            v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["check"] == check && c["outcome"] == "failed"),
            "{check} should fail: {v}"
        );
    };
    failed(verify(tampered.to_str().unwrap(), &["--offline"]), "proof");
    assert!(!node_verify(&tampered, Some(&list_file)).0);
    let foreign = mercato(
        &url,
        &[
            "--json",
            "certs",
            "verify",
            f,
            "--trust",
            other_issuer.as_str(),
            "--offline",
        ],
    );
    failed(foreign, "issuer");
    // Signed with the broker's own key but never anchored: only the chain can tell.
    let key = identity::keyfile::load(&data.join("identity.hex")).unwrap();
    let mut forged: certify::Credential = serde_json::from_value(doc.clone()).unwrap();
    forged.id = "urn:uuid:00000000-0000-4000-8000-00000000f00d".into();
    forged.proof = None;
    let forged = certify::Issuer::new(&key).sign(&forged).await.unwrap();
    let forged = write("unanchored.json", &forged.to_value());
    failed(
        verify(
            forged.to_str().unwrap(),
            &["--rpc-url", &chain, "--registry", &registry, "--offline"],
        ),
        "anchor",
    );

    // An operator revokes: the status list and the chain say so at once, both verifiers refuse.
    let revoked = operator
        .revoke_certificate(&latency.id, "test revocation")
        .await
        .unwrap();
    assert_eq!(revoked.state, CertificateState::Revoked);
    failed(verify(f, &[]), "status");
    failed(
        verify(
            f,
            &["--rpc-url", &chain, "--registry", &registry, "--offline"],
        ),
        "anchor",
    );
    std::fs::write(&list_file, fetch(&list_url).await.to_string()).unwrap();
    let (passed, v) = node_verify(&file, Some(&list_file));
    assert!(!passed && v["status"] == "revoked", "{v}");
    assert!(client
        .certificates(Some(&provider), false)
        .await
        .unwrap()
        .items
        .iter()
        .all(|c| c.id != latency.id));
    // Only operators revoke.
    assert!(agent
        .provider
        .session
        .revoke_certificate(&attested.id, "mine")
        .await
        .is_err());

    // The agent stops answering: within a probe interval or two its latency, throughput and
    // verified-provider credentials are revoked, and the catalog stops counting it verified.
    drop(agent);
    eventually(
        "the unreachable provider to lose its measured credentials",
        Patience::secs(30),
        || async {
            let l = client.certificates(Some(&provider), false).await.unwrap();
            let m = valid_metrics(&l.items);
            !m.contains("verified-provider") && !m.contains("latency")
        },
    )
    .await;
    // The catalog follows the revocation (it is updated right after the database).
    eventually(
        "the catalog to stop counting it verified",
        Patience::secs(10),
        || {
            let search = &search;
            async move { search("verified=true".into()).await.total == 0 }
        },
    )
    .await;
    let all = client.certificates(Some(&provider), true).await.unwrap();
    assert!(all.items.iter().any(|c| c.metric == "verified-provider"
        && c.state == CertificateState::Revoked
        && c.revoke_reason.as_deref() == Some("the agent was unreachable")));
    broker.stop();
}
