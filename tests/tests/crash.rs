//! The purchase survives the broker dying at any step. The broker is aborted (as by kill -9) at
//! each step of the purchase state machine; restarted, it completes the purchase, and the chain
//! agrees: the contract is active on chain exactly when the broker says so, and the consumer paid
//! the deposit exactly once.

use std::time::Duration;

use api::{ChainStatus, ContractState, Role, Topic};
use e2e::market::{offer, request, until_settled, Participant};
use e2e::{BrokerProcess, LedgerProcess, Patience};

const STEPS: [&str; 4] = ["accepted", "opening", "opened", "active"];

#[tokio::test]
async fn a_broker_killed_at_any_purchase_step_completes_the_purchase_once_on_restart() {
    let chain_dir = tempfile::tempdir().unwrap();
    let chain = LedgerProcess::start(chain_dir.path());
    let args = chain.broker_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = tempfile::tempdir().unwrap();

    for (i, step) in STEPS.iter().enumerate() {
        let mut broker =
            BrokerProcess::start_env(data.path(), &args, &[("MERCATO_FAULT_ABORT_AT", step)]);
        let provider = Participant::new_funded(&broker.url, Role::Provider, 2 + 2 * i as u32).await;
        let consumer = Participant::new_funded(&broker.url, Role::Consumer, 3 + 2 * i as u32).await;
        let o = offer(&format!("crash-{step}"), 2, 7_000_000);
        provider.session.publish_offer(o.clone()).await.unwrap();
        let req = request(&o, 1);
        let before = consumer.credits().await;
        let r = consumer.session.reserve(&req).await.unwrap();
        let c = consumer
            .session
            .purchase(&req, &r, &consumer.evm, "once")
            .await
            .unwrap();
        // The broker dies while driving the purchase; the answer may not make it back.
        let _ = provider.session.accept(c.id).await;
        assert!(
            broker.exited(Patience::secs(30)).await,
            "the broker did not stop at {step}"
        );

        let broker = BrokerProcess::start_with(data.path(), &args);
        let consumer = consumer.reconnect(&broker.url);
        let provider = provider.reconnect(&broker.url);
        let done = until_settled(&consumer, c.id).await;
        assert_eq!(
            done.state,
            ContractState::Active,
            "after a crash at {step}: {done:?}"
        );
        let onchain = consumer
            .session
            .contract(c.id)
            .await
            .unwrap()
            .chain
            .unwrap();
        assert_eq!(onchain.status, ChainStatus::Active, "{step}");
        assert_eq!(onchain.terms_hash, r.terms.terms_hash, "{}", c.id);
        assert_eq!(
            consumer.credits().await,
            before.checked_sub(e2e::market::units(7_000_000)).unwrap(),
            "after a crash at {step} the deposit is paid exactly once"
        );
        // The same purchase retried after the restart is the same contract, not a second one.
        let again = consumer
            .session
            .purchase(&req, &r, &consumer.evm, "once")
            .await
            .unwrap();
        assert_eq!(again.id, c.id);
        // Its activation reached the event stream exactly once.
        // (Read up to the newest event, then the count is complete.)
        let head = {
            let mut stream = consumer.session.events(None).await.unwrap();
            provider
                .session
                .publish_offer(offer(&format!("marker-{step}"), 1, 1))
                .await
                .unwrap();
            tokio::time::timeout(Duration::from_secs(20), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
                .seq
        };
        let mut events = consumer.session.events(Some(0)).await.unwrap();
        let mut activated = 0;
        let subject = c.id.to_string();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(20), events.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if e.topic() == Topic::ContractActivated && e.subject == subject {
                activated += 1;
            }
            if e.seq >= head {
                break;
            }
        }
        assert_eq!(activated, 1, "{step}");
        broker.stop();
    }
}
