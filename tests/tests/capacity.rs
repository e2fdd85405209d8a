//! Capacity is never oversold: 100 concurrent reservations of one unit on a plan with capacity
//! 10 give exactly 10 holds, on SQLite, on PostgreSQL, and with two broker processes sharing one
//! PostgreSQL (and one chain).

use api::reservations::ReservationState;
use api::Role;
use e2e::market::{offer, request, Participant};
use e2e::BrokerProcess;
use sdk::SdkError;

/// 10 consumers send 10 reservations each, all at once, spread over `urls` (one per broker).
async fn race(urls: &[String], offer_id: &str) -> (usize, usize) {
    let provider = Participant::new(&urls[0], Role::Provider).await;
    let o = offer(offer_id, 10, 1_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let mut consumers = Vec::new();
    for i in 0..10 {
        // Each consumer talks to one of the brokers.
        let c = Participant::new(&urls[0], Role::Consumer).await;
        let session = sdk::Session::new(
            sdk::Client::new(&urls[i % urls.len()]).unwrap(),
            c.session.key().clone(),
        );
        consumers.push(std::sync::Arc::new(session));
    }
    let mut tasks = Vec::new();
    for round in 0..10 {
        for c in &consumers {
            let c = c.clone();
            let req = request(&o, 1);
            tasks.push(tokio::spawn(async move {
                let _ = round;
                c.reserve(&req).await
            }));
        }
    }
    let (mut held, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.status, ReservationState::Held);
                held += 1;
            }
            Err(SdkError::Api {
                status: 409,
                detail,
                ..
            }) => {
                assert!(detail.contains("free"), "{detail}");
                refused += 1;
            }
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }
    (held, refused)
}

#[tokio::test]
async fn a_hundred_concurrent_reservations_on_sqlite_hold_exactly_the_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    assert_eq!(
        race(std::slice::from_ref(&broker.url), "cap-sqlite").await,
        (10, 90)
    );
    broker.stop();
}

#[tokio::test]
async fn a_hundred_concurrent_reservations_on_postgres_and_two_brokers_hold_exactly_the_capacity() {
    let pg = testkit::pg_server::PgServer::start().expect("PostgreSQL starts");
    // One broker on PostgreSQL.
    let url = pg.create_database("one").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(dir.path(), &["--database-url", &url]);
    assert_eq!(
        race(std::slice::from_ref(&broker.url), "cap-pg").await,
        (10, 90)
    );
    broker.stop();

    // Two brokers on one PostgreSQL and one chain: the second uses the first's chain.
    let url = pg.create_database("two").unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let b1 = BrokerProcess::start_with(d1.path(), &["--database-url", &url]);
    let rpc = b1.chain_url();
    let key = d2.path().join("broker.key");
    let signer = ledger::accounts::dev_signer(ledger::accounts::BROKER_INDEX).unwrap();
    std::fs::write(&key, identity::hex_encode(signer.to_bytes().as_slice())).unwrap();
    let deployment = d1.path().join("ledger").join("deployment.json");
    assert!(deployment.is_file(), "{}", deployment.display());
    let b2 = BrokerProcess::start_with(
        d2.path(),
        &[
            "--database-url",
            &url,
            "--rpc-url",
            &rpc,
            "--deployment",
            deployment.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(
        race(&[b1.url.clone(), b2.url.clone()], "cap-two").await,
        (10, 90)
    );
    b2.stop();
    b1.stop();
}
