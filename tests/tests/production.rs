//! The whole flow from the command line in production mode: PostgreSQL, RabbitMQ and an IPFS
//! daemon (through the Kubo RPC client). A provider onboards and publishes, a consumer buys with
//! `mercato buy` while the provider's `mercato provider accept --watch` signs, then closes. An
//! auditor then reads the contract from the ledger index kept in PostgreSQL, and `mercato audit
//! verify` re-derives the ledger from the chain and the IPFS node alone.

use std::process::{Command, Stdio};

use api::{Contract, ContractState, Credits};
use broker::events::rabbit::EXCHANGE;
use content::{Cid, KuboStore};
use e2e::market::{Participant, PROVIDER_CONFIG};
use e2e::{bin, eventually, mercato, BrokerProcess, Patience};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use testkit::ipfs_daemon::IpfsDaemon;
use testkit::rabbit_server::RabbitServer;

/// A `mercato --json` command that must succeed, its answer decoded.
fn ok<T: serde::de::DeserializeOwned>(broker: &str, key: &str, args: &[&str]) -> T {
    let mut all = vec!["--json", "--key-file", key];
    all.extend_from_slice(args);
    mercato(broker, &all).json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_flow_runs_on_postgres_rabbitmq_and_ipfs() {
    let pg = testkit::pg_server::PgServer::start().expect("PostgreSQL starts");
    let db = pg.create_database("production").unwrap();
    let rabbit = RabbitServer::start().expect("RabbitMQ starts");
    let ipfs = IpfsDaemon::start().expect("js-ipfs starts (scripts/test installs it)");
    let dir = tempfile::tempdir().unwrap();
    let op_key = identity::generate();
    let op_did = identity::did_of(&op_key.verifying_key()).to_string();
    let broker = BrokerProcess::start_with(
        &dir.path().join("broker"),
        &[
            "--database-url",
            &db,
            "--amqp-url",
            &rabbit.url(),
            "--ipfs-api",
            &ipfs.api,
            "--operator",
            &op_did,
        ],
    );
    let url = broker.url.as_str();

    // An auditor's queue on the event exchange (declared by the broker at its first event).
    let conn = Connection::connect(&rabbit.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "audit",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let pkey = dir.path().join("provider.hex");
    let ckey = dir.path().join("consumer.hex");
    let (p, c) = (pkey.to_str().unwrap(), ckey.to_str().unwrap());
    for (key, role) in [(p, "provider"), (c, "consumer")] {
        let _: Value = ok(url, key, &["keys", "new"]);
        let _: Value = ok(url, key, &["register", "--role", role]);
        let linked: Value = ok(url, key, &["account", "link"]);
        assert!(linked["txHash"].as_str().unwrap().starts_with("0x"));
    }
    let grant: Value = ok(url, c, &["faucet"]);
    assert_eq!(grant["minted"], Credits::whole(1_000).to_string());
    // The exchange exists once the broker has published; bind the queue before the purchase.
    eventually(
        "the broker to declare its exchange",
        Patience::secs(20),
        || {
            let ch = ch.clone();
            async move {
                ch.queue_bind(
                    "audit",
                    EXCHANGE,
                    "contract.#",
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .is_ok()
            }
        },
    )
    .await;

    // The provider connects its consumers over WireGuard.
    let provider_config = format!("{PROVIDER_CONFIG}connection:\n  kind: wireguard\n");
    let config = dir.path().join("provider.yaml");
    std::fs::write(&config, &provider_config).unwrap();
    let registered: Value = ok(
        url,
        p,
        &["provider", "register", "--config", config.to_str().unwrap()],
    );
    let cid: Cid = registered["cid"].as_str().unwrap().parse().unwrap();
    // The configuration is in the IPFS node, under the CID registered on chain.
    let kubo = KuboStore::new(&ipfs.api);
    assert_eq!(
        kubo.get(&cid, 1 << 20).await.unwrap(),
        provider_config.as_bytes()
    );

    let offer = e2e::market::offer("prod-1", 4, 2_000_000);
    let file = dir.path().join("offer.yaml");
    std::fs::write(&file, serde_json::to_string_pretty(&offer).unwrap()).unwrap();
    let _: Value = ok(url, p, &["offers", "publish", file.to_str().unwrap()]);

    // The provider's agent policy: accept what is proposed, as it comes.
    let mut watcher = Command::new(bin("mercato"))
        .args([
            "--broker",
            url,
            "--key-file",
            p,
            "provider",
            "accept",
            "--watch",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let plan = format!("prod-1/{}", offer.plans[0].id);
    let bought: Contract = ok(url, c, &["buy", &plan, "--quantity", "2"]);
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(bought.state, ContractState::Active, "{bought:?}");
    let id = bought.id.to_string();

    // WireGuard: `buy` made the consumer's key pair and kept the private half (owner-only); the
    // broker knows only the public half, and the configuration the consumer writes has its own
    // private key. A reservation without a public key is refused with what to do.
    let wg_key = dir.path().join("wireguard").join(format!("{id}.key"));
    let private_hex = std::fs::read_to_string(&wg_key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&wg_key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let wg_conf = dir.path().join("wg0.conf");
    let _: Value = ok(
        url,
        c,
        &[
            "credentials",
            "get",
            &id,
            "--out",
            wg_conf.to_str().unwrap(),
        ],
    );
    let conf = std::fs::read_to_string(&wg_conf).unwrap();
    use base64::Engine;
    let private_b64 = base64::engine::general_purpose::STANDARD
        .encode(identity::hex_decode(private_hex.trim()).unwrap());
    assert!(
        conf.contains(&format!("PrivateKey = {private_b64}")),
        "{conf}"
    );
    assert!(conf.contains("Address = 10.77."), "{conf}");
    let stranger = Participant::new(url, api::Role::Consumer).await;
    let err = stranger
        .session
        .reserve(&e2e::market::request(&offer, 1))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("wireguardKey"), "{err}");

    let listed: Vec<Contract> = ok(url, c, &["contracts", "list"]);
    assert_eq!(listed.len(), 1);
    let shown: Contract = ok(url, c, &["contracts", "show", &id]);
    assert_eq!(
        shown.chain.as_ref().unwrap().status,
        api::ChainStatus::Active
    );
    // The contract document and both signatures are in IPFS.
    let doc = kubo.get(shown.document_cid.cid(), 1 << 20).await.unwrap();
    assert_eq!(doc, shown.document.as_deref().unwrap().as_bytes());
    let sig_cid = shown.signatures_cid.clone().unwrap();
    let sigs: api::document::SignedDocument =
        serde_json::from_slice(&kubo.get(sig_cid.cid(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(Some(sigs.provider_signature), shown.provider_signature);

    let closed: Contract = ok(url, c, &["contracts", "close", &id]);
    assert_eq!(closed.state, ContractState::Closed);
    assert_eq!(closed.refund, Some(Credits::ZERO));

    // An auditor reads the contract from the ledger index (in PostgreSQL): closed, with the
    // signatures envelope the chain logged.
    let client = sdk::Client::new(url).unwrap();
    let auditor_key = identity::generate();
    sdk::Session::new(client.clone(), op_key)
        .grant(&auditor_key, api::Role::Auditor)
        .await
        .unwrap();
    let auditor = sdk::Session::new(client, auditor_key);
    let page: api::audit::AuditContractPage = auditor
        .audit("contracts", &api::audit::AuditContractsQuery::default())
        .await
        .unwrap();
    let audited = page
        .items
        .iter()
        .find(|a| a.contract_id == bought.id)
        .expect("the contract in the index");
    assert_eq!(audited.state, api::audit::LedgerContractState::Closed);
    assert_eq!(audited.signatures_cid, Some(sig_cid.to_string()));
    // The ledger re-derived from the chain and the IPFS node alone, with no broker.
    let verified = mercato(
        url,
        &[
            "--json",
            "audit",
            "verify",
            "--rpc-url",
            &broker.chain_url(),
            "--deployment",
            dir.path()
                .join("broker")
                .join("ledger")
                .join("deployment.json")
                .to_str()
                .unwrap(),
            "--ipfs-api",
            &ipfs.api,
        ],
    );
    let report: sdk::audit::Report = serde_json::from_str(&verified.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}{}", verified.stdout, verified.stderr));
    assert!(verified.ok && report.differences.is_empty(), "{report:?}");
    assert_eq!(report.contracts, 1);
    assert!(report.configurations >= 1);

    // RabbitMQ carried the contract's life.
    let mut consumer = ch
        .basic_consume(
            "audit",
            "audit",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut topics = Vec::new();
    while !topics.iter().any(|t| t == "contract.closed") {
        let d = tokio::time::timeout(std::time::Duration::from_secs(20), consumer.next())
            .await
            .expect("contract events on RabbitMQ")
            .unwrap()
            .unwrap();
        topics.push(d.routing_key.to_string());
    }
    for t in [
        "contract.proposed",
        "contract.accepted",
        "contract.activated",
    ] {
        assert!(topics.iter().any(|x| x == t), "{t} missing from {topics:?}");
    }
    broker.stop();
}
