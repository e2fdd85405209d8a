//! What cannot be read is an error that names it, never a default that hides it: a row the broker
//! stored with a value it cannot read is logged with its table, column and key and answered as a
//! 500 problem with an incident id (and nothing of the cause); an answer the client cannot read in
//! the API's types is an error that names the request and the field.

use std::io::{Read, Write};
use std::net::TcpListener;

use api::{ContractState, Role};
use e2e::market::{buy, offer, request, Participant, PROVIDER_CONFIG};
use e2e::{mercato, BrokerProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_broker_cannot_read_is_named_in_its_log_and_answered_500() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broker");
    let broker = BrokerProcess::start(&data);
    let provider = Participant::new(&broker.url, Role::Provider).await;
    provider
        .session
        .register_config(&provider.evm, PROVIDER_CONFIG)
        .await
        .unwrap();
    let o = offer("corrupt-1", 4, 1_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let consumer = Participant::new(&broker.url, Role::Consumer).await;
    let c = buy(&consumer, &provider, &request(&o, 1)).await;
    assert_eq!(c.state, ContractState::Active);

    // The database itself refuses a state the broker does not know ...
    let url = format!("sqlite://{}", data.join("broker.sqlite").display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let refused = sqlx::query("UPDATE contracts SET state = 'paused' WHERE id = $1")
        .bind(c.id.to_string())
        .execute(&db)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("CHECK"), "{refused}");
    // ... but not every value it cannot read: something other than the broker (a hand edit, a bad
    // migration) writes a quantity no contract can have.
    let changed = sqlx::query("UPDATE contracts SET quantity = -3 WHERE id = $1")
        .bind(c.id.to_string())
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);

    let err = consumer.session.contract(c.id).await.unwrap_err();
    assert_eq!(err.status(), Some(500), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("incident") && !text.contains("-3") && !text.contains("quantity"),
        "the answer names an incident and nothing of its cause: {text}"
    );
    let incident = text
        .split("incident ")
        .nth(1)
        .and_then(|r| r.get(..8))
        .expect("an incident id");
    let log = std::fs::read_to_string(data.join("broker.log")).unwrap();
    assert!(
        log.lines().any(|l| l.contains(incident)
            && l.contains("contracts.quantity")
            && l.contains(&c.id.to_string())
            && l.contains("-3")),
        "the log names the incident, the column, the row and the value:\n{log}"
    );
    // Not read as some other state: the contract is not shown, listed, or closed.
    assert_eq!(
        consumer.session.contracts().await.unwrap_err().status(),
        Some(500)
    );
    assert_eq!(
        consumer.session.close(c.id).await.unwrap_err().status(),
        Some(500)
    );
    broker.stop();
}

#[test]
fn an_answer_not_in_the_api_types_is_an_error_naming_the_field() {
    // A "broker" whose ledger answer has a chain id that is not a number.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request).unwrap();
        let body = r#"{"chainId":"one","rpcUrl":"x","blockNumber":1,"deploymentBlock":1}"#;
        write!(
            conn,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    let answer = mercato(&url, &["status"]);
    server.join().unwrap();
    assert!(!answer.ok);
    let err = answer.err();
    assert!(
        err.contains("unexpected answer") && err.contains("/v1/ledger") && err.contains("chainId"),
        "{err}"
    );
}
