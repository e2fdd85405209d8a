//! RabbitMQ being down delays events, never loses them: events are written to the outbox while
//! RabbitMQ is stopped and started again; every one of them reaches a queue bound to the exchange.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::events::outbox::{self, Audience, Topic};
use broker::events::rabbit::{RabbitBus, EXCHANGE};
use broker::events::rabbit_server::RabbitServer;
use broker::events::{bus, Bus};
use broker::store::Store;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

const EVENTS: u64 = 300;

async fn emit(store: &Store, i: u64) {
    let mut tx = store.begin().await.unwrap();
    outbox::emit(
        &mut tx,
        store.backend(),
        Topic::OfferPublished,
        &format!("offer-{i}"),
        &Audience::Everyone,
        serde_json::json!({ "i": i }),
        i,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn unpublished(store: &Store) -> usize {
    outbox::unpublished(store.pool(), 10_000)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_stopped_and_restarted_while_publishing_loses_no_event() {
    let mut rabbit = RabbitServer::start().expect("RabbitMQ starts");
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("b.sqlite").display()
    );
    let store = Store::open(&url).await.unwrap();

    // The consumer side: a durable queue bound to every routing key of the exchange (which the
    // bus declares on connecting).
    RabbitBus::new(&rabbit.url()).publish(&[]).await.unwrap();
    let conn = Connection::connect(&rabbit.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.queue_declare("audit", durable, FieldTable::default())
        .await
        .unwrap();
    ch.queue_bind(
        "audit",
        EXCHANGE,
        "#",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    conn.close(0, "declared").await.unwrap();

    let wake = Arc::new(tokio::sync::Notify::new());
    let bus: Arc<dyn Bus> = Arc::new(RabbitBus::new(&rabbit.url()));
    let relay = tokio::spawn(bus::relay(
        store.clone(),
        bus,
        wake.clone(),
        Duration::from_millis(20),
    ));

    for i in 1..=EVENTS {
        emit(&store, i).await;
        wake.notify_one();
        if i == 100 {
            let start = Instant::now();
            while unpublished(&store).await > 0 && start.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::task::block_in_place(|| rabbit.stop());
        }
        if i == 200 {
            // Events 101..=200 were written while RabbitMQ was down: none is published yet.
            assert_eq!(unpublished(&store).await, 100);
            tokio::task::block_in_place(|| rabbit.resume()).expect("RabbitMQ restarts");
        }
    }
    let start = Instant::now();
    while unpublished(&store).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "events stuck in the outbox"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    relay.abort();

    // Every event is in the queue (at least once; duplicates are told apart by message id).
    let conn = Connection::connect(&rabbit.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut consumer = ch
        .basic_consume(
            "audit",
            "count",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < EVENTS as usize {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("every event arrives")
            .unwrap()
            .unwrap();
        let id: u64 = delivery
            .properties
            .message_id()
            .as_ref()
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        assert_eq!(delivery.routing_key.as_str(), "offer.published");
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        seen.insert(id);
    }
    assert_eq!(seen, (1..=EVENTS).collect::<BTreeSet<_>>());
}
