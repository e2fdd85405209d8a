//! RabbitMQ being down delays events, never loses them: events are written to the outbox while
//! RabbitMQ is stopped and started again; every one of them reaches a queue bound to the exchange.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use api::events::{EventBody, OfferWithdrawn};
use broker::events::outbox::{self, Audience, Pending};
use broker::events::rabbit::{RabbitBus, EXCHANGE};
use broker::events::{relay, Bus};
use broker::shutdown;
use broker::store::{PoolSize, Store};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use testkit::rabbit_server::RabbitServer;
use testkit::{eventually, Patience};

const EVENTS: u64 = 300;

async fn emit(store: &Store, i: u64) {
    let tx = store.begin().await.unwrap();
    let event = Pending {
        subject: format!("offer-{i}"),
        audience: Audience::Everyone,
        body: EventBody::OfferWithdrawn(OfferWithdrawn {
            offer: format!("offer-{i}").parse().unwrap(),
            provider: identity::did_of(&identity::generate().verifying_key()),
        }),
    };
    outbox::commit(store, tx, vec![event], i).await.unwrap();
}

async fn unpublished(store: &Store) -> usize {
    let mut tx = store.pool().begin().await.unwrap();
    outbox::unpublished(&mut tx, 10_000).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_stopped_and_restarted_while_publishing_loses_no_event() {
    let mut rabbit = RabbitServer::start().expect("RabbitMQ starts");
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("b.sqlite").display()
    );
    let store = Store::open(
        &url,
        PoolSize {
            max_connections: None,
        },
    )
    .await
    .unwrap();

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
    let (stop, stopped) = shutdown::channel();
    let relay = tokio::spawn(relay::relay(
        store.clone(),
        bus,
        wake.clone(),
        Duration::from_millis(20),
        stopped,
    ));

    for i in 1..=EVENTS {
        emit(&store, i).await;
        wake.notify_one();
        if i == 100 {
            eventually(
                "the first 100 events to be published",
                Patience::secs(30),
                || async { unpublished(&store).await == 0 },
            )
            .await;
            tokio::task::block_in_place(|| rabbit.stop());
        }
        if i == 200 {
            // Events 101..=200 were written while RabbitMQ was down: none is published yet.
            assert_eq!(unpublished(&store).await, 100);
            tokio::task::block_in_place(|| rabbit.resume()).expect("RabbitMQ restarts");
        }
    }
    eventually(
        "every event to leave the outbox",
        Patience::secs(90),
        || async { unpublished(&store).await == 0 },
    )
    .await;
    stop.fire();
    relay.await.unwrap();

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
        assert_eq!(delivery.routing_key.as_str(), "offer.withdrawn");
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        seen.insert(id);
    }
    assert_eq!(seen, (1..=EVENTS).collect::<BTreeSet<_>>());
}
