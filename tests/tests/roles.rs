//! Every endpoint with every role: who may call it, who is refused (401 without a token, 403
//! for a role that may not, 404/410 for what belongs to someone else). One table, asserted as a
//! whole.

use api::{ContractState, Role};
use e2e::market::{buy, offer, request, Participant};
use e2e::BrokerProcess;
use reqwest::Method;
use serde_json::{json, Value};

/// Callers, in the order the matrix columns list them: anonymous, the other provider, the other
/// consumer, an auditor, an operator, the consumer and the provider of the contract. The parties
/// go last so their side effects (close, withdraw) come after the others' attempts.
const CALLERS: [&str; 7] = [
    "anon",
    "provider2",
    "consumer2",
    "auditor",
    "operator",
    "consumer",
    "provider",
];

fn category(status: u16) -> char {
    match status {
        401 => 'u',
        403 => 'f',
        404 | 410 => 'h',
        _ => 'o',
    }
}

#[tokio::test]
async fn every_endpoint_checks_role_and_ownership() {
    let dir = tempfile::tempdir().unwrap();
    let op_key = identity::generate();
    let op_did = identity::did_of(&op_key.verifying_key()).to_string();
    let broker = BrokerProcess::start_with(dir.path(), &["--operator", &op_did]);
    let url = broker.url.clone();
    let http = reqwest::Client::new();

    let provider = Participant::new(&url, Role::Provider).await;
    let provider2 = Participant::new(&url, Role::Provider).await;
    let consumer = Participant::new(&url, Role::Consumer).await;
    let consumer2 = Participant::new(&url, Role::Consumer).await;
    let operator = sdk::Session::new(sdk::Client::new(&url).unwrap(), op_key);
    let auditor_key = identity::generate();
    let granted = operator.grant(&auditor_key, Role::Auditor).await.unwrap();
    assert_eq!(granted.role, Role::Auditor);
    let auditor = sdk::Session::new(sdk::Client::new(&url).unwrap(), auditor_key);

    // What the endpoints act on: an offer, a held reservation and an active contract.
    let o = offer("matrix", 5, 1_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    provider
        .session
        .publish_offer(offer("matrix-w", 1, 1))
        .await
        .unwrap();
    let contract = buy(&consumer, &provider, &request(&o, 1)).await;
    assert_eq!(contract.state, ContractState::Active);
    let reservation = consumer.session.reserve(&request(&o, 1)).await.unwrap();
    let current: Value = http
        .get(format!("{url}/v1/offers/matrix"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (c, r, p) = (contract.id, reservation.id, provider.did());
    let account = consumer.evm.address();

    let mut tokens = Vec::new();
    for who in CALLERS {
        let session = match who {
            "anon" => None,
            "provider" => Some(&provider.session),
            "provider2" => Some(&provider2.session),
            "consumer" => Some(&consumer.session),
            "consumer2" => Some(&consumer2.session),
            "auditor" => Some(&auditor),
            _ => Some(&operator),
        };
        tokens.push(match session {
            Some(s) => Some(s.token().await.unwrap()),
            None => None,
        });
    }

    // (method, path, body, expected per caller in CALLERS order):
    // o = allowed (2xx, or a 4xx about the request itself), u = 401, f = 403, h = 404/410.
    let offer_body = current["offer"].clone();
    // Well-formed signatures (that sign nothing): what decides is who calls.
    let evm_sig = format!("0x{}1b", "11".repeat(64));
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (Method::GET, "/health".into(), Value::Null, "ooooooo"),
        (Method::GET, "/v1/ledger".into(), Value::Null, "ooooooo"),
        (
            Method::GET,
            "/v1/openapi.json".into(),
            Value::Null,
            "ooooooo",
        ),
        (Method::GET, "/v1/offers".into(), Value::Null, "ooooooo"),
        (
            Method::GET,
            "/v1/offers/facets".into(),
            Value::Null,
            "ooooooo",
        ),
        (
            Method::GET,
            "/v1/offers/matrix".into(),
            Value::Null,
            "ooooooo",
        ),
        (
            Method::GET,
            "/v1/offers/matrix/history".into(),
            Value::Null,
            "ooooooo",
        ),
        (Method::POST, "/v1/offers".into(), offer_body, "ufffffo"),
        (
            Method::POST,
            "/v1/offers/matrix-w/withdraw".into(),
            Value::Null,
            "ufffffo",
        ),
        (
            Method::POST,
            "/v1/participants".into(),
            json!({}),
            "ooooooo",
        ),
        (
            Method::POST,
            "/v1/auth/challenge".into(),
            json!({"did": "x"}),
            "ooooooo",
        ),
        (Method::POST, "/v1/auth/token".into(), json!({}), "ooooooo"),
        (Method::GET, "/v1/auth/me".into(), Value::Null, "uoooooo"),
        (
            Method::POST,
            "/v1/participants/me/account".into(),
            json!({}),
            "uoooooo",
        ),
        (
            Method::GET,
            format!("/v1/accounts/{account}"),
            Value::Null,
            "uoooooo",
        ),
        (Method::POST, "/v1/faucet".into(), Value::Null, "uooffoo"),
        (
            Method::POST,
            "/v1/providers/me/config".into(),
            json!({"config": "x", "cid": "x", "deadline": 0, "signature": "0x00"}),
            "uoffffo",
        ),
        (
            Method::GET,
            format!("/v1/providers/{p}/config"),
            Value::Null,
            "hhhhhhh",
        ),
        (
            Method::POST,
            "/v1/reservations".into(),
            json!({"offerId": "matrix", "planId": "x", "quantity": 0}),
            "ufoffof",
        ),
        (
            Method::GET,
            format!("/v1/reservations/{r}"),
            Value::Null,
            "uhhoooo",
        ),
        (
            Method::POST,
            format!("/v1/reservations/{r}/purchase"),
            json!({"documentSignature": "00".repeat(64), "openSignature": evm_sig.clone(), "permitSignature": evm_sig.clone()}),
            "ufhffof",
        ),
        (Method::GET, "/v1/contracts".into(), Value::Null, "uoooooo"),
        (
            Method::GET,
            format!("/v1/contracts/{c}"),
            Value::Null,
            "uhhoooo",
        ),
        (
            Method::POST,
            format!("/v1/contracts/{c}/accept"),
            json!({"signature": "00"}),
            "uhffffo",
        ),
        (
            Method::POST,
            format!("/v1/contracts/{c}/close"),
            Value::Null,
            "uhhffoo",
        ),
        (
            Method::GET,
            format!("/v1/contracts/{c}/credentials"),
            Value::Null,
            "ufhffof",
        ),
        (
            Method::POST,
            format!("/v1/contracts/{c}/credentials/renew"),
            Value::Null,
            "ufhffof",
        ),
        (
            Method::POST,
            format!("/v1/contracts/{c}/credentials/revoke"),
            Value::Null,
            "ufffoff",
        ),
        (
            Method::POST,
            "/v1/usage".into(),
            json!({"records": []}),
            "uoffffo",
        ),
        (
            Method::GET,
            format!("/v1/contracts/{c}/usage"),
            Value::Null,
            "uhhoooo",
        ),
        (
            Method::GET,
            "/v1/usage/none/proof".into(),
            Value::Null,
            "uhhhhhh",
        ),
        (
            Method::GET,
            format!("/v1/contracts/{c}/statement"),
            Value::Null,
            "uhhoooo",
        ),
        (
            Method::GET,
            format!("/v1/contracts/{c}/escrow"),
            Value::Null,
            "uhhoooo",
        ),
        (
            Method::POST,
            format!("/v1/contracts/{c}/topup"),
            json!({"amount": 0, "deadline": 0, "topUpSignature": "0x00", "permitSignature": "0x00"}),
            "ufhffof",
        ),
        (
            Method::POST,
            "/v1/usage/none/dispute".into(),
            json!({"reason": "x"}),
            "ufoffof",
        ),
        (
            Method::POST,
            "/v1/usage/none/resolve".into(),
            json!({"uphold": true}),
            "ufffoff",
        ),
        (Method::GET, "/v1/events".into(), Value::Null, "uoooooo"),
    ];
    let mut got_table = Vec::new();
    let mut failures = Vec::new();
    for (method, path, body, expected) in &cases {
        let mut got = String::new();
        for token in &tokens {
            let mut req = http
                .request(method.clone(), format!("{url}{path}"))
                .header("idempotency-key", "matrix");
            if !body.is_null() {
                req = req.json(body);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            if status >= 400 {
                assert_eq!(
                    resp.headers()["content-type"],
                    "application/problem+json",
                    "{method} {path} {status}"
                );
            }
            got.push(category(status));
        }
        if got != *expected {
            failures.push(format!("{method} {path}: expected {expected}, got {got}"));
        }
        got_table.push(format!("{method:6} {path:60} {got}"));
    }
    assert!(
        failures.is_empty(),
        "callers {CALLERS:?}\n{}\n\nall:\n{}",
        failures.join("\n"),
        got_table.join("\n")
    );
    broker.stop();
}
