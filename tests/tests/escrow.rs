//! Escrow that never runs silently dry: the parties are warned well before, a contract whose
//! escrow cannot pay is suspended (its credential stops working), a top-up resumes it and its
//! usage settles, and a contract left suspended is closed with its escrow refunded.

use std::time::Duration;

use api::{ChainStatus, ContractId, ContractState, Credits, Role, Topic, UsageRecordId};
use e2e::market::{
    buy_by_policy, credential_hash, offer, ppu_offer, request, signed_usage, units, until_closed,
    Participant,
};
use e2e::peer::{provider_with_agent, use_bytes};
use e2e::{eventually, BrokerProcess, Patience};
use sdk::events::EventStream;

/// Reads the stream until the event `topic` about `contract` comes.
async fn until_event(events: &mut EventStream, topic: Topic, contract: ContractId) {
    let subject = contract.to_string();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = events.next().await.unwrap().expect("the stream goes on");
            if e.topic() == topic && e.subject == subject {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {topic} for {contract}"));
}

async fn settled(consumer: &Participant, c: ContractId) -> Credits {
    consumer.session.usage(c).await.unwrap().settled
}

async fn chain_of(consumer: &Participant, c: ContractId) -> api::contracts::ChainAgreement {
    consumer.session.contract(c).await.unwrap().chain.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escrow_is_watched_warned_suspended_topped_up_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--settle-interval",
        "1",
        "--dispute-window",
        "0",
        "--escrow-warn",
        "100000",
        "--suspended-grace",
        "3",
    ];
    let broker = BrokerProcess::start_with(&dir.path().join("broker"), &args);
    let url = broker.url.clone();
    let agent = provider_with_agent(&url, dir.path(), None, true).await;
    let provider = &agent.provider;
    let consumer = Participant::new(&url, Role::Consumer).await;
    let o = ppu_offer("escrow-1", 4, 1_000_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let mut events = consumer.session.events(Some(0)).await.unwrap();
    let buy = |deposit: u128| {
        let (consumer, o) = (&consumer, o.clone());
        async move {
            let mut req = request(&o, 1);
            req.deposit = Some(units(deposit));
            // Top-ups raise what the contract may spend: the signed bound per hour is above
            // the deposit here (the default, the deposit, would hold the usage after a top-up
            // back until the next hour).
            req.usage_cap = Some(units(100_000_000));
            buy_by_policy(consumer, &req).await
        }
    };

    // 3,000,000 of escrow; 2,000,000 used (1 MB each way at 10 credits/GB) and settled.
    let c = buy(3_000_000).await;
    let credential = consumer.session.credential(c.id).await.unwrap();
    use_bytes(&consumer, &credential, 1_000_000).await;
    eventually("the first usage to settle", Patience::secs(30), || async {
        settled(&consumer, c.id).await == units(2_000_000)
    })
    .await;
    // The runway is short against the warning threshold: a warning, in the API and as an event.
    let e = consumer.session.escrow(c.id).await.unwrap();
    assert!(e.runway.warning, "{e:?}");
    assert_eq!(e.runway.available, units(1_000_000), "{e:?}");
    until_event(&mut events, Topic::EscrowLow, c.id).await;

    // Another 2,000,000 of use: the escrow cannot pay, the contract is suspended and its
    // credential stops working; nothing is charged beyond the escrow.
    use_bytes(&consumer, &credential, 1_000_000).await;
    until_event(&mut events, Topic::ContractSuspended, c.id).await;
    eventually(
        "the agent to refuse the suspended contract",
        Patience::secs(30),
        || async {
            sdk::credentials::dial(consumer.session.key(), &credential)
                .await
                .is_err()
        },
    )
    .await;
    assert_eq!(
        chain_of(&consumer, c.id).await.status,
        ChainStatus::Suspended
    );

    // A top-up resumes it, a new credential works, the waiting usage settles.
    let out = consumer
        .session
        .top_up(c.id, &consumer.evm, units(5_000_000))
        .await
        .unwrap();
    assert!(out.resumed, "{out:?}");
    let fresh = consumer.session.credential(c.id).await.unwrap();
    eventually(
        "the agent to admit the new credential",
        Patience::secs(30),
        || async {
            sdk::credentials::dial(consumer.session.key(), &fresh)
                .await
                .is_ok()
        },
    )
    .await;
    eventually(
        "the waiting usage to settle",
        Patience::secs(30),
        || async { settled(&consumer, c.id).await == units(4_000_000) },
    )
    .await;
    let statement = consumer.session.statement(c.id).await.unwrap();
    assert!(statement.matches_chain, "{statement:?}");
    assert_eq!(statement.chain_escrow, units(4_000_000), "{statement:?}");

    // A contract left suspended past the grace is closed, its escrow refunded.
    let before = consumer.credits().await;
    let c2 = buy(1_000_000).await;
    let cred2 = consumer.session.credential(c2.id).await.unwrap();
    use_bytes(&consumer, &cred2, 1_000_000).await;
    let closed = until_closed(&consumer, c2.id).await;
    assert_eq!(closed.refund, Some(units(1_000_000)));
    assert_eq!(consumer.credits().await, before);
    broker.stop();
}

/// A consumer disputes a record within the window: it is held out of settlement while the rest
/// settles; an operator's decision releases (or voids) it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disputed_usage_waits_for_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let op_key = identity::generate();
    let op_did = identity::did_of(&op_key.verifying_key()).to_string();
    let args = [
        "--settle-interval",
        "1",
        "--dispute-window",
        "3",
        "--operator",
        &op_did,
    ];
    let broker = BrokerProcess::start_with(&dir.path().join("broker"), &args);
    let url = broker.url.clone();
    let operator = sdk::Session::new(sdk::Client::new(&url).unwrap(), op_key);
    let provider = Participant::new(&url, Role::Provider).await;
    let consumer = Participant::new(&url, Role::Consumer).await;
    let o = ppu_offer("dispute-1", 2, 1_000_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let mut req = request(&o, 1);
    req.deposit = Some(units(10_000_000));
    let c = e2e::market::buy(&consumer, &provider, &req).await;
    assert_eq!(c.state, ContractState::Active);
    // Records the provider's agent reports (signed by the provider), through the contract's
    // credential.
    let credential = credential_hash(&consumer, c.id).await;
    let record = |id: &str, bytes: u64| {
        signed_usage(&provider, &consumer.did(), c.id, &credential, id, bytes)
    };
    let out = provider
        .session
        .report_usage(&[record("fair", 1_000_000), record("padded", 9_000_000)])
        .await
        .unwrap();
    assert!(
        out.iter()
            .all(|o| o.status == api::usage::UsageOutcome::Accepted),
        "{out:?}"
    );
    let (fair, padded): (UsageRecordId, UsageRecordId) =
        ("fair".parse().unwrap(), "padded".parse().unwrap());
    // Only the contract's consumer disputes, once, before settlement.
    assert!(provider
        .session
        .dispute_usage(&padded, "too much")
        .await
        .is_err());
    consumer
        .session
        .dispute_usage(&padded, "we moved 1 MB, not 9")
        .await
        .unwrap();
    assert!(consumer
        .session
        .dispute_usage(&padded, "again")
        .await
        .is_err());
    eventually(
        "the undisputed record to settle",
        Patience::secs(30),
        || async { settled(&consumer, c.id).await == units(1_000_000) },
    )
    .await;
    // A record reported after the disputed one settles too, while the disputed one waits.
    provider
        .session
        .report_usage(&[record("later", 2_000_000)])
        .await
        .unwrap();
    eventually("the later record to settle", Patience::secs(30), || async {
        settled(&consumer, c.id).await == units(3_000_000)
    })
    .await;
    let usage = consumer.session.usage(c.id).await.unwrap();
    let held = usage
        .records
        .iter()
        .find(|u| u.record.id == padded)
        .unwrap();
    assert!(held.batch_id.is_none(), "{held:?}");
    assert_eq!(held.dispute, Some(api::usage::DisputeState::Open));
    // Past the window a settled record cannot be disputed.
    assert!(consumer.session.dispute_usage(&fair, "late").await.is_err());
    // The operator voids the padded record: it settles at nothing, and the chain agrees.
    assert!(consumer
        .session
        .resolve_dispute(&padded, false)
        .await
        .is_err());
    let before = consumer
        .session
        .client()
        .reputation(&provider.did())
        .await
        .unwrap();
    operator.resolve_dispute(&padded, false).await.unwrap();
    // Decided against the provider: its reputation shows it, component and score.
    let after = consumer
        .session
        .client()
        .reputation(&provider.did())
        .await
        .unwrap();
    assert_eq!(
        after.components.disputes_lost,
        before.components.disputes_lost + 1
    );
    assert!(after.score < before.score, "{before:?} {after:?}");
    eventually(
        "the voided record to settle at nothing",
        Patience::secs(30),
        || async {
            let usage = consumer.session.usage(c.id).await.unwrap();
            usage
                .records
                .iter()
                .any(|u| u.record.id == padded && u.batch_id.is_some() && u.amount == units(0))
        },
    )
    .await;
    assert_eq!(chain_of(&consumer, c.id).await.charged, units(3_000_000));
    broker.stop();
}

/// Reserved plans are charged per period in advance; the period the escrow cannot pay suspends
/// the contract.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_periods_are_charged_in_advance_until_the_escrow_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--settle-interval", "1", "--suspended-grace", "3600"];
    let broker = BrokerProcess::start_with(&dir.path().join("broker"), &args);
    let url = broker.url.clone();
    let provider = Participant::new(&url, Role::Provider).await;
    let consumer = Participant::new(&url, Role::Consumer).await;
    let mut o = offer("periods-1", 2, 1_000_000);
    o.plans[0].pricing = catalog::model::Pricing {
        reserved: Some(catalog::model::ReservedPrice {
            price: units(1_000_000),
            period_seconds: 60,
        }),
        pay_per_use: None,
    };
    provider.session.publish_offer(o.clone()).await.unwrap();
    let mut req = request(&o, 1);
    req.periods = Some(3);
    let c = e2e::market::buy(&consumer, &provider, &req).await;
    assert_eq!(c.state, ContractState::Active);
    let mut events = consumer.session.events(Some(0)).await.unwrap();
    // Three periods escrowed: charged at opening, then as each falls due (the chain's clock is
    // moved on a period at a time); the fourth cannot be paid and the chain suspends it.
    let advance = || broker.advance_chain(61);
    assert_eq!(chain_of(&consumer, c.id).await.charged, units(1_000_000));
    for charged in [2_000_000, 3_000_000] {
        advance().await;
        eventually("the period to be charged", Patience::secs(30), || async {
            chain_of(&consumer, c.id).await.charged == units(charged)
        })
        .await;
    }
    advance().await;
    until_event(&mut events, Topic::ContractSuspended, c.id).await;
    let chain = chain_of(&consumer, c.id).await;
    assert_eq!(chain.charged, units(3_000_000), "{chain:?}");
    assert_eq!(chain.status, ChainStatus::Suspended);
    assert!(
        consumer.session.credential(c.id).await.is_err(),
        "no credential while suspended"
    );
    // The statement, from the chain's events, shows every period paid, and agrees with the chain.
    let statement = consumer.session.statement(c.id).await.unwrap();
    let periods: Vec<_> = statement
        .lines
        .iter()
        .filter(|l| l.kind == api::usage::LineKind::Period)
        .collect();
    assert_eq!(periods.len(), 3, "{statement:?}");
    assert!(periods.iter().all(|l| l.amount == units(1_000_000)));
    assert_eq!(statement.charged, units(3_000_000));
    assert!(statement.matches_chain, "{statement:?}");

    // A top-up resumes it; a close gives back what is left; the statement still agrees with the
    // chain, with the top-up and the refund among its lines.
    let out = consumer
        .session
        .top_up(c.id, &consumer.evm, units(2_500_000))
        .await
        .unwrap();
    assert!(out.resumed, "{out:?}");
    consumer.session.close(c.id).await.unwrap();
    let closed = e2e::market::until_closed(&consumer, c.id).await;
    let statement = consumer.session.statement(c.id).await.unwrap();
    assert!(statement.matches_chain, "{statement:?}");
    let kinds: Vec<_> = statement.lines.iter().map(|l| l.kind).collect();
    assert!(
        kinds.contains(&api::usage::LineKind::Topup)
            && kinds.contains(&api::usage::LineKind::Refund),
        "{statement:?}"
    );
    let refund = statement
        .lines
        .iter()
        .find(|l| l.kind == api::usage::LineKind::Refund)
        .unwrap()
        .amount;
    assert_eq!(closed.refund, Some(refund));
    // Deposit and top-up in, charges and refund out: nothing left in escrow.
    assert_eq!(
        units(5_500_000),
        statement.chain_charged.checked_add(refund).unwrap(),
        "{statement:?}"
    );
    broker.stop();
}
