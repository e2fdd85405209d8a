//! Identity through the running broker: registration proves the key, login is a signed single-use
//! challenge, tokens identify the caller, and every refusal is a problem with a reason.

use catalog::identity::{did_of, sign_hex};
use e2e::BrokerProcess;
use ed25519_dalek::SigningKey;
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

    async fn audience(&self) -> String {
        let (_, ledger) = self.get("/v1/ledger", None).await;
        catalog::identity::audience(
            ledger["chainId"].as_u64().unwrap(),
            ledger["contracts"]["marketplace"].as_str().unwrap(),
        )
    }

    async fn register(&self, key: &SigningKey, role: &str, token: Option<&str>) -> (u16, Value) {
        let did = did_of(&key.verifying_key());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let msg = catalog::identity::registration_message(&self.audience().await, &did, role, now);
        let body = json!({"did": did, "role": role, "issuedAt": now, "signature": sign_hex(key, msg.as_bytes())});
        self.post("/v1/participants", body, token).await
    }

    async fn login(&self, key: &SigningKey) -> (u16, Value) {
        let did = did_of(&key.verifying_key());
        let (status, ch) = self
            .post("/v1/auth/challenge", json!({"did": did}), None)
            .await;
        assert_eq!(status, 200);
        let sig = sign_hex(key, ch["message"].as_str().unwrap().as_bytes());
        self.post(
            "/v1/auth/token",
            json!({"did": did, "nonce": ch["nonce"], "signature": sig}),
            None,
        )
        .await
    }
}

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
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

    let (status, _) = api.register(&consumer, "consumer", None).await;
    assert_eq!(status, 201);
    let (status, tok) = api.login(&consumer).await;
    assert_eq!(status, 200, "{tok}");
    let token = tok["token"].as_str().unwrap().to_string();
    let (status, me) = api.get("/v1/auth/me", Some(&token)).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("consumer")));
    assert_eq!(me["did"], did_of(&consumer.verifying_key()));

    // A replayed challenge, a challenge signed by another key, a forged token: all refused.
    let did = did_of(&consumer.verifying_key());
    let (_, ch) = api
        .post("/v1/auth/challenge", json!({"did": did}), None)
        .await;
    let sig = sign_hex(&consumer, ch["message"].as_str().unwrap().as_bytes());
    let body = json!({"did": did, "nonce": ch["nonce"], "signature": sig});
    assert_eq!(api.post("/v1/auth/token", body.clone(), None).await.0, 200);
    assert_eq!(api.post("/v1/auth/token", body, None).await.0, 401);
    let (_, ch) = api
        .post("/v1/auth/challenge", json!({"did": did}), None)
        .await;
    let forged = sign_hex(&key(), ch["message"].as_str().unwrap().as_bytes());
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
    assert_eq!(api.get("/v1/auth/me", Some(&"ab".repeat(32))).await.0, 401);
    assert_eq!(api.get("/v1/auth/me", None).await.0, 401);

    // Only operators grant operator/auditor roles; roles do not change by re-registering.
    let (status, problem) = api.register(&key(), "operator", None).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(api.register(&key(), "auditor", Some(&token)).await.0, 403);
    assert_eq!(api.register(&consumer, "provider", None).await.0, 409);

    // Registration needs the key's own signature over a fresh message.
    let other = key();
    let body = json!({"did": did_of(&other.verifying_key()), "role": "provider", "issuedAt": 1, "signature": "00"});
    assert_eq!(api.post("/v1/participants", body, None).await.0, 400);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stolen = json!({"did": did_of(&other.verifying_key()), "role": "provider", "issuedAt": now, "signature": sign_hex(&consumer, b"x")});
    assert_eq!(api.post("/v1/participants", stolen, None).await.0, 401);

    // Bad bodies are problems too: unknown fields, not a did, too large.
    assert_eq!(
        api.post("/v1/auth/challenge", json!({"did": did, "extra": 1}), None)
            .await
            .0,
        422
    );
    assert_eq!(
        api.post("/v1/auth/challenge", json!({"did": "did:web:x"}), None)
            .await
            .0,
        400
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
    let (ok, did, err) = run(&["keys", "new"]);
    assert!(ok, "{err}");
    let did = did.trim().to_string();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    let (ok, _, err) = run(&["keys", "new"]);
    assert!(!ok && err.contains("not overwritten"), "{err}");
    assert_eq!(run(&["keys", "show"]).1.trim(), did);

    let (ok, _, err) = run(&["whoami"]);
    assert!(!ok && err.contains("register"), "{err}");
    let (ok, out, err) = run(&["register", "--role", "provider"]);
    assert!(ok && out.contains(&did), "{err}");
    let (ok, out, err) = run(&["whoami"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("{did} (provider)"));
    let (ok, _, err) = e2e::mercato(&broker.url, &["--key-file", "/nonexistent/key", "whoami"]);
    assert!(!ok && err.contains("mercato keys new"), "{err}");
    broker.stop();
}
