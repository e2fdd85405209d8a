//! The whole flow from the command line in production mode: PostgreSQL, RabbitMQ and an IPFS
//! daemon (through the Kubo RPC client). A provider onboards and publishes, a consumer buys with
//! `mercato buy` while the provider's `mercato provider accept --watch` signs, then closes.

use std::process::{Command, Stdio};

use broker::events::rabbit::EXCHANGE;
use broker::events::rabbit_server::RabbitServer;
use content::ipfs_daemon::IpfsDaemon;
use content::{Cid, KuboStore};
use e2e::market::PROVIDER_CONFIG;
use e2e::{bin, mercato, BrokerProcess};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;

fn ok(broker: &str, key: &str, args: &[&str]) -> String {
    let mut all = vec!["--key-file", key];
    all.extend_from_slice(args);
    let (success, out, err) = mercato(broker, &all);
    assert!(success, "mercato {args:?} failed: {err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_flow_runs_on_postgres_rabbitmq_and_ipfs() {
    let pg = catalog::pg_server::PgServer::start().expect("PostgreSQL starts");
    let db = pg.create_database("production").unwrap();
    let rabbit = RabbitServer::start().expect("RabbitMQ starts");
    let ipfs = IpfsDaemon::start().expect("js-ipfs starts (scripts/test installs it)");
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(
        &dir.path().join("broker"),
        &[
            "--database-url",
            &db,
            "--amqp-url",
            &rabbit.url(),
            "--ipfs-api",
            &ipfs.api,
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
        ok(url, key, &["keys", "new"]);
        ok(url, key, &["register", "--role", role]);
        let linked: Value = serde_json::from_str(&ok(url, key, &["account", "link"])).unwrap();
        assert!(linked["txHash"].as_str().unwrap().starts_with("0x"));
    }
    ok(url, c, &["faucet"]);
    // The exchange exists once the broker has published; bind the queue before the purchase.
    for _ in 0..100 {
        if ch
            .queue_bind(
                "audit",
                EXCHANGE,
                "contract.#",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let config = dir.path().join("provider.yaml");
    std::fs::write(&config, PROVIDER_CONFIG).unwrap();
    let registered: Value = serde_json::from_str(&ok(
        url,
        p,
        &["provider", "register", "--config", config.to_str().unwrap()],
    ))
    .unwrap();
    let cid: Cid = registered["cid"].as_str().unwrap().parse().unwrap();
    // The configuration is in the IPFS node, under the CID registered on chain.
    let kubo = KuboStore::new(&ipfs.api);
    assert_eq!(
        kubo.get(&cid, 1 << 20).await.unwrap(),
        PROVIDER_CONFIG.as_bytes()
    );

    let offer = e2e::market::offer("prod-1", 4, 2_000_000);
    let file = dir.path().join("offer.yaml");
    std::fs::write(&file, serde_json::to_string_pretty(&offer).unwrap()).unwrap();
    ok(url, p, &["offers", "publish", file.to_str().unwrap()]);

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
    let bought: Value =
        serde_json::from_str(&ok(url, c, &["--json", "buy", &plan, "--quantity", "2"])).unwrap();
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(bought["state"], "active", "{bought}");
    let id = bought["id"].as_str().unwrap();

    let listed: Value =
        serde_json::from_str(&ok(url, c, &["--json", "contracts", "list"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let shown: Value = serde_json::from_str(&ok(url, c, &["contracts", "show", id])).unwrap();
    assert_eq!(shown["chain"]["status"], "active");
    // The contract document and both signatures are in IPFS.
    let doc_cid: Cid = shown["documentCid"].as_str().unwrap().parse().unwrap();
    let doc = kubo.get(&doc_cid, 1 << 20).await.unwrap();
    assert_eq!(doc, shown["document"].as_str().unwrap().as_bytes());
    let sig_cid: Cid = shown["signaturesCid"].as_str().unwrap().parse().unwrap();
    let sigs: Value = serde_json::from_slice(&kubo.get(&sig_cid, 1 << 20).await.unwrap()).unwrap();
    assert_eq!(sigs["providerSignature"], shown["providerSignature"]);

    let closed: Value =
        serde_json::from_str(&ok(url, c, &["--json", "contracts", "close", id])).unwrap();
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["refund"], "0");

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
