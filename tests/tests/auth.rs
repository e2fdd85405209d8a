//! Identity through the running broker: registration proves the key, login is a signed single-use
//! challenge, tokens identify the caller, and every refusal is a problem with a reason.

use e2e::BrokerProcess;
use ed25519_dalek::SigningKey;
use identity::{did_of, sign_hex, Did, Domain};
use serde_json::{json, Value};

struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        if status >= 400 {
            assert_eq!(
                resp.headers()["content-type"],
                "application/problem+json",
                "{path}"
            );
        }
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The deployment's audience and the broker's did, as the ledger shows them.
    async fn audience(&self) -> (String, Did) {
        let (_, ledger) = self.get("/v1/ledger", None).await;
        (
            identity::audience(
                ledger["chainId"].as_u64().unwrap(),
                ledger["contracts"]["marketplace"].as_str().unwrap(),
            ),
            ledger["brokerDid"].as_str().unwrap().parse().unwrap(),
        )
    }

    async fn register(&self, key: &SigningKey, role: &str, token: Option<&str>) -> (u16, Value) {
        let did = did_of(&key.verifying_key());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (audience, broker) = self.audience().await;
        let msg = identity::registration_message(&audience, &self.url, &broker, &did, role, now);
        let body = json!({"did": did, "role": role, "issuedAt": now, "signature": sign_hex(key, Domain::Registration, msg.as_bytes())});
        self.post("/v1/participants", body, token).await
    }

    async fn login(&self, key: &SigningKey) -> (u16, Value) {
        let did = did_of(&key.verifying_key());
        let (status, ch) = self
            .post("/v1/auth/challenge", json!({"did": did}), None)
            .await;
        assert_eq!(status, 200);
        let (audience, broker) = self.audience().await;
        let sig = sign_hex(
            key,
            Domain::Login,
            login(&audience, &self.url, &broker, &did, &ch).as_bytes(),
        );
        self.post(
            "/v1/auth/token",
            json!({"did": did, "nonce": ch["nonce"], "signature": sig}),
            None,
        )
        .await
    }
}

fn key() -> SigningKey {
    identity::generate()
}

/// The login message for a challenge, built from its parts (never a text the broker sends), for
/// the broker at `origin` whose did is `broker`.
fn login(audience: &str, origin: &str, broker: &Did, did: &Did, ch: &Value) -> String {
    identity::login_message(
        audience,
        origin,
        broker,
        did,
        ch["nonce"].as_str().unwrap(),
        ch["expiresAt"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn register_log_in_and_be_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let api = Api {
        url: broker.url.clone(),
        http: reqwest::Client::new(),
    };

    // Not registered: login refused with a way out.
    let consumer = key();
    let (status, problem) = api.login(&consumer).await;
    assert_eq!(status, 403);
    assert!(problem["detail"].as_str().unwrap().contains("register"));

    // A registration signed for another broker (relayed from there) is refused.
    let relayed = key();
    let did = did_of(&relayed.verifying_key());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (audience, broker_did) = api.audience().await;
    let msg = identity::registration_message(
        &audience,
        "https://relay.example",
        &broker_did,
        &did,
        "consumer",
        now,
    );
    let body = json!({"did": did, "role": "consumer", "issuedAt": now, "signature": sign_hex(&relayed, Domain::Registration, msg.as_bytes())});
    let (status, problem) = api.post("/v1/participants", body, None).await;
    assert_eq!(status, 401, "{problem}");

    let (status, _) = api.register(&consumer, "consumer", None).await;
    assert_eq!(status, 201);
    let (status, tok) = api.login(&consumer).await;
    assert_eq!(status, 200, "{tok}");
    let token = tok["token"].as_str().unwrap().to_string();
    let (status, me) = api.get("/v1/auth/me", Some(&token)).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("consumer")));
    assert_eq!(me["did"], did_of(&consumer.verifying_key()).to_string());

    // A replayed challenge, a challenge signed by another key, a forged token: all refused.
    let did = did_of(&consumer.verifying_key());
    let (_, ch) = api
        .post("/v1/auth/challenge", json!({"did": did}), None)
        .await;
    assert!(
        ch.get("message").is_none(),
        "the broker sends no text to sign"
    );
    let sig = sign_hex(
        &consumer,
        Domain::Login,
        login(&audience, &api.url, &broker_did, &did, &ch).as_bytes(),
    );
    let body = json!({"did": did, "nonce": ch["nonce"], "signature": sig});
    assert_eq!(api.post("/v1/auth/token", body.clone(), None).await.0, 200);
    assert_eq!(api.post("/v1/auth/token", body, None).await.0, 401);
    let (_, ch) = api
        .post("/v1/auth/challenge", json!({"did": did}), None)
        .await;
    let forged = sign_hex(
        &key(),
        Domain::Login,
        login(&audience, &api.url, &broker_did, &did, &ch).as_bytes(),
    );
    assert_eq!(
        api.post(
            "/v1/auth/token",
            json!({"did": did, "nonce": ch["nonce"], "signature": forged}),
            None
        )
        .await
        .0,
        401
    );
    // A challenge relayed by another broker: the participant signed a login to the relay (the
    // origin it talks to), which this broker refuses.
    let (_, ch) = api
        .post("/v1/auth/challenge", json!({"did": did}), None)
        .await;
    let relayed = sign_hex(
        &consumer,
        Domain::Login,
        login(&audience, "https://relay.example", &broker_did, &did, &ch).as_bytes(),
    );
    let (status, problem) = api
        .post(
            "/v1/auth/token",
            json!({"did": did, "nonce": ch["nonce"], "signature": relayed}),
            None,
        )
        .await;
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("login to this broker"),
        "{problem}"
    );
    // A login naming another broker's did (the one the participant pinned is not this one), or
    // the same text signed as another kind of message (an offer, a document): refused.
    for (broker, domain) in [
        (did_of(&key().verifying_key()), Domain::Login),
        (broker_did.clone(), Domain::Offer),
        (broker_did.clone(), Domain::ContractDocument),
    ] {
        let (_, ch) = api
            .post("/v1/auth/challenge", json!({"did": did}), None)
            .await;
        let sig = sign_hex(
            &consumer,
            domain,
            login(&audience, &api.url, &broker, &did, &ch).as_bytes(),
        );
        let (status, problem) = api
            .post(
                "/v1/auth/token",
                json!({"did": did, "nonce": ch["nonce"], "signature": sig}),
                None,
            )
            .await;
        assert_eq!(status, 401, "{domain:?}: {problem}");
    }
    // A session that pinned another broker's did refuses this one before signing anything.
    let pinned = sdk::Session::new(sdk::Client::new(&api.url).unwrap(), consumer.clone())
        .with_pin(sdk::BrokerPin::Given(did_of(&key().verifying_key())));
    let e = pinned.token().await.unwrap_err();
    assert!(matches!(e, sdk::SdkError::BrokerChanged(_)), "{e}");
    assert_eq!(api.get("/v1/auth/me", Some(&"ab".repeat(32))).await.0, 401);
    assert_eq!(api.get("/v1/auth/me", None).await.0, 401);

    // Only operators grant operator/auditor roles; roles do not change by re-registering.
    let (status, problem) = api.register(&key(), "operator", None).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(api.register(&key(), "auditor", Some(&token)).await.0, 403);
    assert_eq!(api.register(&consumer, "provider", None).await.0, 409);

    // Registration needs the key's own signature over a fresh message.
    let other = key();
    let body = json!({"did": did_of(&other.verifying_key()), "role": "provider", "issuedAt": 1, "signature": "00".repeat(64)});
    assert_eq!(api.post("/v1/participants", body, None).await.0, 400);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stolen = json!({"did": did_of(&other.verifying_key()), "role": "provider", "issuedAt": now, "signature": sign_hex(&consumer, Domain::Registration, b"x")});
    assert_eq!(api.post("/v1/participants", stolen, None).await.0, 401);

    // Bad bodies are problems too: unknown fields, not a did, too large.
    assert_eq!(
        api.post("/v1/auth/challenge", json!({"did": did, "extra": 1}), None)
            .await
            .0,
        422
    );
    let (status, problem) = api
        .post("/v1/auth/challenge", json!({"did": "did:web:x"}), None)
        .await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("did:key"),
        "{problem}"
    );
    let huge = json!({"did": "x".repeat(100_000)});
    assert_eq!(api.post("/v1/auth/challenge", huge, None).await.0, 413);
    broker.stop();
}

#[test]
fn the_cli_creates_a_key_registers_and_logs_in_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let key = dir.path().join("keys/me.hex");
    let key_arg = key.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--key-file", key_arg];
        all.extend_from_slice(args);
        e2e::mercato(&broker.url, &all)
    };
    let did = run(&["keys", "new"]).out().trim().to_string();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    assert!(run(&["keys", "new"]).err().contains("not overwritten"));
    assert_eq!(run(&["keys", "show"]).out().trim(), did);
    let shown: serde_json::Value = run(&["--json", "keys", "show"]).json();
    assert_eq!(shown["did"], did);
    assert!(shown["account"].as_str().unwrap().starts_with("0x"));

    assert!(run(&["whoami"]).err().contains("register"));
    assert!(run(&["register", "--role", "provider"])
        .out()
        .contains(&did));
    assert_eq!(run(&["whoami"]).out().trim(), format!("{did} (provider)"));
    let me: api::Principal = run(&["--json", "whoami"]).json();
    assert_eq!(
        (me.did.to_string(), me.role),
        (did.clone(), api::Role::Provider)
    );
    // The key file can come from MERCATO_KEY instead of --key-file.
    let out = std::process::Command::new(e2e::bin("mercato"))
        .env("MERCATO_KEY", &key)
        .args(["--broker", &broker.url, "whoami"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{did} (provider)")
    );
    // A role that is not self-service is refused by the CLI itself.
    assert!(run(&["register", "--role", "operator"])
        .err()
        .contains("invalid value"));
    let missing = e2e::mercato(&broker.url, &["--key-file", "/nonexistent/key", "whoami"]);
    assert!(missing.err().contains("mercato keys new"));
    broker.stop();
}

/// Registration and login challenges need no login, so they are rate-limited per address.
#[tokio::test]
async fn unauthenticated_endpoints_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(dir.path(), &["--auth-rate", "5"]);
    let http = reqwest::Client::new();
    let did = did_of(&key().verifying_key());
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let resp = http
            .post(format!("{}/v1/auth/challenge", broker.url))
            .json(&json!({"did": did}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            retry_after = resp.headers().get("retry-after").cloned();
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
        }
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let wait: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Logged-in endpoints are not limited by it.
    assert_eq!(
        http.get(format!("{}/v1/ledger", broker.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    broker.stop();
}
