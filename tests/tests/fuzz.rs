//! The API and its OpenAPI document agree, both ways, under generated requests: schemathesis
//! (installed by scripts/test) reads the broker's own document and sends requests made from it,
//! valid and invalid, with and without a token; every answer must be documented (status, media
//! type, body schema), no request may get a 5xx, invalid input must be refused, and the limits the
//! document states must be the ones enforced. Bounded: a fixed number of examples per operation
//! and a time limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use api::{ContractState, Role};
use e2e::market::{buy, offer, request, Participant, PROVIDER_CONFIG};
use e2e::BrokerProcess;

/// Generated examples per operation and phase (`MERCATO_FUZZ_EXAMPLES` for a longer run).
const EXAMPLES: &str = "40";
/// The whole run's bound at the default number of examples (longer runs get it in proportion).
const LIMIT: Duration = Duration::from_secs(600);

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("MERCATO_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/mercato/venv/bin/schemathesis")
        });
    assert!(
        path.is_file(),
        "schemathesis is missing at {}: run scripts/test (it installs it) or set MERCATO_SCHEMATHESIS",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_its_document_says_under_generated_requests() {
    let tool = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(&dir.path().join("broker"), &["--auth-rate", "100000"]);
    // Something to find: a provider with a configuration and an offer, a consumer with an active
    // contract, as the generated requests' caller.
    let provider = Participant::new(&broker.url, Role::Provider).await;
    provider
        .session
        .register_config(&provider.evm, PROVIDER_CONFIG)
        .await
        .unwrap();
    let o = offer("fuzz-1", 16, 1_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let consumer = Participant::new(&broker.url, Role::Consumer).await;
    let c = buy(&consumer, &provider, &request(&o, 1)).await;
    assert_eq!(c.state, ContractState::Active);
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    // As a consumer and as a provider, at once (one core each): each role reaches the operations
    // it may call.
    let (as_consumer, as_provider) = tokio::join!(
        fuzz_as(
            "consumer",
            &consumer,
            &tool,
            &config,
            &broker.url,
            dir.path()
        ),
        fuzz_as(
            "provider",
            &provider,
            &tool,
            &config,
            &broker.url,
            dir.path()
        ),
    );
    let generated = as_consumer + as_provider;
    assert!(generated > 2000, "too few generated requests: {generated}");
    broker.stop();
}

fn examples() -> String {
    std::env::var("MERCATO_FUZZ_EXAMPLES").unwrap_or_else(|_| EXAMPLES.to_string())
}

/// Runs schemathesis with `who`'s token; returns how many requests it generated.
async fn fuzz_as(
    role: &str,
    who: &Participant,
    tool: &Path,
    config: &Path,
    url: &str,
    dir: &Path,
) -> u64 {
    let token = who.session.token().await.unwrap();
    let work = dir.join(role);
    std::fs::create_dir_all(&work).unwrap();
    let report = work.join("report.json");
    let run = tokio::process::Command::new(tool)
        .arg("--config-file")
        .arg(config)
        .args(["run", &format!("{url}/v1/openapi.json")])
        .args(["--url", url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", &examples(), "--seed", "20261202"])
        .args(["--workers", "1", "--request-timeout", "30", "--no-color"])
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .current_dir(&work)
        .kill_on_drop(true)
        .output();
    let scale = examples().parse::<u32>().unwrap_or(40).div_ceil(40).max(1);
    let out = tokio::time::timeout(LIMIT * scale, run)
        .await
        .expect("schemathesis finished within its bound")
        .expect("schemathesis runs");
    let summary: serde_json::Value = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    eprintln!(
        "schemathesis as a {role}: {} requests over {} operations, {} failing",
        summary["test_cases"]["generated"],
        summary["operations"]["tested"],
        summary["test_cases"]["with_failures"],
    );
    assert!(
        out.status.success(),
        "schemathesis (as a {role}) found the API and its document disagreeing:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    summary["test_cases"]["generated"].as_u64().unwrap_or(0)
}

/// What is checked, and what is left out and why.
const CONFIG: &str = r#"
# The event stream never ends while its token lives: it is tested end to end instead.
[[operations]]
include-path = "/v1/events"
enabled = false

# A schema-valid request can still be refused for what the schema cannot say: a signature that
# does not verify or a deadline in the past (400), terms the plan does not allow or a chain that
# refuses what was signed (422), a participant with no account yet (412), a used reservation (410).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "410", "412", "422", "429"]

# A body over the size limit is refused before it is read (413), whatever is wrong inside it.
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"#;
