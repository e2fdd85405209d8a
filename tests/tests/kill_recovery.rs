//! Crash recovery: the embedded broker is killed with SIGKILL at random moments of purchases,
//! top-ups, settlements and closes, alone or together with its chain (as a power loss does), and started
//! again, round after round. After each start the broker must be up by itself, and its records
//! must agree with the chain: every contract it shows active is active on chain, every failed
//! purchase moved nothing, the consumer's credits on chain plus what its contracts hold equal
//! what it was minted, and each contract's statement (its settled usage) matches the chain.
//!
//! Seeded and replayable: `MERCATO_CRASH_SEED` (default fixed), `MERCATO_CRASH_ROUNDS` (rounds
//! per mode, default 20).

use std::path::Path;
use std::time::Duration;

use api::{ContractState, Credits, Role};
use e2e::market::{credential_hash, offer, ppu_offer, request, signed_usage, units, Participant};
use e2e::peer::provider_with_agent;
use e2e::{eventually, eventually_some, BrokerProcess, Patience};

/// xorshift64*: enough randomness for choosing moments, replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The broker alone: its chain gets SIGTERM from the kernel (it dies with its parent).
    Broker,
    /// The broker and its chain at once: the chain loses what it had not written yet.
    BrokerAndChain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Buy,
    TopUp,
    /// The provider reports usage; the broker settles it within a second.
    Settle,
    Close,
}

fn anvil_pid(data: &Path) -> Option<u32> {
    // "<chain pid> <owner pid>"
    std::fs::read_to_string(data.join("ledger/anvil.pid"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

/// Starts one operation of the consumer's; its outcome does not matter (the kill may cut it).
fn start_op(
    op: Op,
    consumer: &Participant,
    provider: &Participant,
    req: &api::reservations::ReserveRequest,
    active: Vec<api::ContractId>,
    pick: u64,
    round: usize,
) -> tokio::task::JoinHandle<()> {
    let copy = |p: &Participant| Participant {
        session: sdk::Session::new(p.session.client().clone(), p.session.key().clone()),
        evm: p.evm.clone(),
    };
    let (consumer, provider) = (copy(consumer), copy(provider));
    let req = req.clone();
    tokio::spawn(async move {
        let target = (!active.is_empty()).then(|| active[pick as usize % active.len()]);
        match (op, target) {
            (Op::Settle, Some(c)) => {
                let credential = credential_hash(&consumer, c).await;
                let record = signed_usage(
                    &provider,
                    &consumer.did(),
                    c,
                    &credential,
                    &format!("r{round}"),
                    USAGE_BYTES,
                );
                let _ = provider.session.report_usage(&[record]).await;
            }
            (Op::TopUp, Some(c)) => {
                let _ = consumer
                    .session
                    .top_up(c, &consumer.evm, units(10_000_000))
                    .await;
            }
            (Op::Close, Some(c)) => {
                let _ = consumer.session.close(c).await;
            }
            _ => {
                if let Ok(r) = consumer.session.reserve(&req).await {
                    let _ = consumer
                        .session
                        .purchase(&req, &r, &consumer.evm, &format!("k-{}", r.id))
                        .await;
                }
            }
        }
    })
}

/// A snapshot of an external development chain, to revert to.
async fn snapshot(chain: &e2e::LedgerProcess) -> serde_json::Value {
    ledger::anvil::dev_rpc(&chain.rpc_url, "evm_snapshot", serde_json::json!([]))
        .await
        .unwrap()
}

/// The chain as it was at `snapshot`: what a reorganisation below the broker's depth leaves.
async fn revert(chain: &e2e::LedgerProcess, snapshot: serde_json::Value) {
    let reverted =
        ledger::anvil::dev_rpc(&chain.rpc_url, "evm_revert", serde_json::json!([snapshot]))
            .await
            .unwrap();
    assert_eq!(reverted, serde_json::json!(true));
}

async fn settled(consumer: &Participant, c: api::ContractId) -> Credits {
    consumer.session.usage(c).await.unwrap().settled
}

/// Bytes in each usage record (a credit unit each: the offer charges 1 per byte).
const USAGE_BYTES: u64 = 200_000;

/// What the round found: contracts by state, and whether every check held.
async fn check(consumer: &Participant, minted: Credits, round: usize) -> Tally {
    // In-flight purchases and closes finish by themselves after a restart.
    let contracts = eventually_some(
        "every contract to reach a settled state after the restart",
        Patience::secs(90),
        || async {
            let list = consumer.session.contracts().await.ok()?;
            list.iter().all(|c| c.state.is_settled()).then_some(list)
        },
    )
    .await;
    let (mut active, mut closed, mut failed) = (0, 0, 0);
    let (mut held, mut settled) = (Credits::ZERO, Credits::ZERO);
    for c in &contracts {
        let full = consumer.session.contract(c.id).await.unwrap();
        let chain = full.chain.as_ref();
        let status = chain.map(|a| a.status);
        use api::contracts::ChainStatus as S;
        match c.state {
            ContractState::Active => {
                active += 1;
                assert!(
                    matches!(status, Some(S::Active | S::Suspended)),
                    "round {round}: {} is active in the broker, {status:?} on chain",
                    c.id
                );
            }
            ContractState::Closed => {
                closed += 1;
                assert!(
                    matches!(status, Some(S::Closed)),
                    "round {round}: {} is closed in the broker, {status:?} on chain",
                    c.id
                );
            }
            ContractState::Failed => {
                failed += 1;
                assert!(
                    matches!(status, None | Some(S::None)),
                    "round {round}: failed purchase {} is {status:?} on chain",
                    c.id
                );
            }
            other => panic!("round {round}: {} still {other:?}", c.id),
        }
        if let Some(a) = chain.filter(|a| a.status != S::None) {
            held = held
                .checked_add(a.escrow)
                .unwrap()
                .checked_add(a.charged)
                .unwrap();
            // A batch sent just before the kill is confirmed by the restarted broker.
            eventually(
                &format!(
                    "round {round}: the statement of {} to match the chain",
                    c.id
                ),
                Patience::secs(60),
                || async {
                    consumer
                        .session
                        .statement(c.id)
                        .await
                        .is_ok_and(|s| s.matches_chain)
                },
            )
            .await;
            settled = settled
                .checked_add(self::settled(consumer, c.id).await)
                .unwrap();
        }
    }
    // Conservation: what the consumer has plus what its contracts took is what it was minted.
    let balance = consumer
        .session
        .account(consumer.evm.address())
        .await
        .unwrap()
        .credits;
    assert_eq!(
        balance.checked_add(held).unwrap(),
        minted,
        "round {round}: balance {balance} + held by contracts {held} is not what was minted"
    );
    Tally {
        active,
        closed,
        failed,
        settled,
    }
}

/// Contracts by state after a round, and the usage settled on them.
#[derive(Debug, Clone, Copy)]
struct Tally {
    active: usize,
    closed: usize,
    failed: usize,
    settled: Credits,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_at_any_moment_restarts_by_itself_and_agrees_with_the_chain() {
    let seed: u64 = std::env::var("MERCATO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let rounds: usize = std::env::var("MERCATO_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("crash test: seed {seed} (MERCATO_CRASH_SEED), {rounds} rounds per mode");
    let mut rng = Rng(seed.max(1));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broker");
    // Usage settles a second after it is reported, so kills land in settlements too.
    let args = ["--settle-interval", "1", "--dispute-window", "0"];
    let mut broker = BrokerProcess::start_with(&data, &args);
    let (url, port) = (broker.url.clone(), broker.port);
    let agent = provider_with_agent(&url, dir.path(), None, true).await;
    // Pay per use: 1 credit unit per byte.
    let o = ppu_offer("crash-1", 16, 1_000_000_000);
    agent
        .provider
        .session
        .publish_offer(o.clone())
        .await
        .unwrap();
    let consumer = Participant::new(&url, Role::Consumer).await;
    let minted = consumer
        .session
        .account(consumer.evm.address())
        .await
        .unwrap()
        .credits;
    let mut req = request(&o, 1);
    req.deposit = Some(units(5_000_000));

    let mut figures = Vec::new();
    for round in 0..2 * rounds {
        let mode = if round % 2 == 0 {
            Mode::Broker
        } else {
            Mode::BrokerAndChain
        };
        let list = consumer.session.contracts().await.unwrap();
        let active: Vec<_> = list
            .iter()
            .filter(|c| c.state == ContractState::Active)
            .map(|c| c.id)
            .collect();
        let op = match rng.below(10) {
            _ if active.len() >= 8 => Op::Close,
            _ if active.is_empty() => Op::Buy,
            0..=3 => Op::Buy,
            4..=5 => Op::TopUp,
            6..=7 => Op::Settle,
            _ => Op::Close,
        };
        let task = start_op(
            op,
            &consumer,
            &agent.provider,
            &req,
            active,
            rng.next(),
            round,
        );
        // A random moment of the operation: up to 1.5 s into it.
        tokio::time::sleep(Duration::from_millis(rng.below(1500))).await;
        let chain = anvil_pid(&data);
        if mode == Mode::BrokerAndChain {
            if let Some(pid) = chain {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        broker.kill9();
        task.abort();
        let _ = task.await;
        // Started again as a person (or systemd) would: no cleanup, no manual step.
        broker = BrokerProcess::start_on(port, &data, &args, &[]);
        if let Some(pid) = chain {
            assert!(
                !alive(pid),
                "round {round}: the old chain (pid {pid}) still runs"
            );
        }
        let t = check(&consumer, minted, round).await;
        eprintln!(
            "round {round:2} {mode:?} during {op:?}: {} active, {} closed, {} failed, {} settled; checks hold",
            t.active, t.closed, t.failed, t.settled
        );
        figures.push((mode, op, t));
    }
    let last = figures.last().map(|f| f.2).unwrap();
    // What the restarts had to repair, from the broker's log.
    let log = std::fs::read_to_string(data.join("broker.log")).unwrap_or_default();
    let restored = log.matches("restored a journaled transaction").count();
    let orphans = log
        .matches("stopping the chain a crashed predecessor left running")
        .count();
    let lost = log.matches("cannot be restored on chain").count();
    let kills = |op: Op| figures.iter().filter(|f| f.1 == op).count();
    eprintln!(
        "{{\"rounds\":{},\"seed\":{seed},\"killsDuring\":{{\"buy\":{},\"topUp\":{},\"settle\":{},\"close\":{}}},\"active\":{},\"closed\":{},\"failed\":{},\"settledUnits\":{},\"transactionsRestored\":{restored},\"orphanChainsStopped\":{orphans},\"transactionsLost\":{lost}}}",
        figures.len(),
        kills(Op::Buy),
        kills(Op::TopUp),
        kills(Op::Settle),
        kills(Op::Close),
        last.active,
        last.closed,
        last.failed,
        last.settled.base_units(),
    );
    assert_eq!(lost, 0, "transactions the journal could not restore");
    // The rounds did buy, top up and close: the test did not pass by doing nothing.
    assert!(
        last.active + last.closed >= 3,
        "too few contracts were bought: {figures:?}"
    );
    assert!(last.closed >= 1, "no contract was closed: {figures:?}");
    assert!(!last.settled.is_zero(), "no usage was settled: {figures:?}");
    drop(agent);
    broker.stop();
}

/// An external chain that reorganises below the depth the broker waited for (here: reverted to a
/// snapshot taken before the purchase, so the offer's contract, its deposit and the provider's
/// acceptance are gone): the broker, started again, sends its lost transactions again from its
/// journal before serving, and the contract is active on chain as the broker says, paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_that_lost_the_brokers_transactions_gets_them_back_at_restart() {
    lost_purchase(true).await;
}

/// The same loss without the journal (removed, as a lost disk would): what cannot be restored is
/// marked, never shown as done; the contract is failed with why, and no deposit was taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_the_chain_lost_for_good_is_marked_failed_not_shown_active() {
    lost_purchase(false).await;
}

async fn lost_purchase(journal: bool) {
    let chain_dir = tempfile::tempdir().unwrap();
    let chain = e2e::LedgerProcess::start(chain_dir.path());
    let args = chain.broker_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(data.path(), &args);
    let provider = Participant::new_funded(&broker.url, Role::Provider, 2).await;
    let consumer = Participant::new_funded(&broker.url, Role::Consumer, 3).await;
    let snapshot = snapshot(&chain).await;
    let o = offer("reorg-1", 2, 7_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let before = consumer.credits().await;
    let c = e2e::market::buy(&consumer, &provider, &request(&o, 1)).await;
    assert_eq!(c.state, ContractState::Active);
    broker.stop();

    revert(&chain, snapshot).await;
    if !journal {
        std::fs::remove_file(data.path().join("tx-journal")).unwrap();
    }

    let broker = BrokerProcess::start_with(data.path(), &args);
    let consumer = consumer.reconnect(&broker.url);
    let shown = consumer.session.contract(c.id).await.unwrap();
    let status = shown.chain.as_ref().map(|a| a.status);
    let log = std::fs::read_to_string(data.path().join("broker.log")).unwrap_or_default();
    if journal {
        assert_eq!(shown.state, ContractState::Active);
        assert_eq!(status, Some(api::contracts::ChainStatus::Active));
        assert_eq!(
            consumer.credits().await,
            before.checked_sub(units(7_000_000)).unwrap(),
            "the deposit is paid once"
        );
        assert!(log.contains("restored a journaled transaction"), "{log}");
    } else {
        assert_eq!(shown.state, ContractState::Failed, "{shown:?}");
        assert!(
            shown
                .failure
                .as_deref()
                .unwrap_or_default()
                .contains("the chain no longer has this contract"),
            "{shown:?}"
        );
        assert_eq!(consumer.credits().await, before, "no deposit was taken");
    }
    broker.stop();
}

/// What the chain lost for good besides contracts (its latest blocks reverted, the journal gone):
/// an account linked after the loss point is unmarked so its participant links again, a newer
/// provider configuration is dropped so the provider registers again, and a settlement batch the
/// chain no longer has is sent again, so the statement matches the chain and the usage is charged
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_configurations_and_batches_the_chain_lost_are_unmarked_or_sent_again() {
    let chain_dir = tempfile::tempdir().unwrap();
    let chain = e2e::LedgerProcess::start(chain_dir.path());
    let mut args = chain.broker_args();
    args.extend(["--settle-interval", "1", "--dispute-window", "0"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start_with(data.path(), &args);
    let provider = Participant::new_funded(&broker.url, Role::Provider, 2).await;
    let v1 = provider
        .session
        .register_config(&provider.evm, e2e::market::PROVIDER_CONFIG)
        .await
        .unwrap();
    let consumer = Participant::new_funded(&broker.url, Role::Consumer, 3).await;
    let o = ppu_offer("lost-2", 2, 1_000_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let mut req = request(&o, 1);
    req.deposit = Some(units(5_000_000));
    let c = e2e::market::buy(&consumer, &provider, &req).await;
    let credential = credential_hash(&consumer, c.id).await;
    let snapshot = snapshot(&chain).await;

    // After the point the chain will lose: a link, a configuration, a settled batch.
    let late = Participant::new(&broker.url, Role::Provider).await;
    async fn register(p: &Participant, name: &str) -> api::providers::ConfigRegistered {
        let config = e2e::market::PROVIDER_CONFIG.replace("edge-1", name);
        p.session.register_config(&p.evm, &config).await.unwrap()
    }
    let v2 = register(&provider, "edge-2").await;
    assert_eq!((v1.version, v2.version), (1, 2));
    let record = signed_usage(&provider, &consumer.did(), c.id, &credential, "u1", 300_000);
    provider.session.report_usage(&[record]).await.unwrap();
    eventually("the usage to settle", Patience::secs(30), || async {
        settled(&consumer, c.id).await == units(300_000)
    })
    .await;
    broker.stop();

    revert(&chain, snapshot).await;
    std::fs::remove_file(data.path().join("tx-journal")).unwrap();

    let broker = BrokerProcess::start_with(data.path(), &args);
    let (consumer, provider, late) = (
        consumer.reconnect(&broker.url),
        provider.reconnect(&broker.url),
        late.reconnect(&broker.url),
    );
    // The link is no longer claimed: linking again is accepted (not "linked already").
    late.session.link_account(&late.evm).await.unwrap();
    // The configuration is the chain's again, and the provider's next one is version 2.
    let shown = provider
        .session
        .client()
        .provider_config(&provider.did())
        .await
        .unwrap();
    assert_eq!((shown.version, shown.cid), (1, v1.cid));
    let again = register(&provider, "edge-3").await;
    assert_eq!(again.version, 2);
    // The batch is sent again: charged once, on chain as in the statement.
    eventually(
        "the statement to match the chain again",
        Patience::secs(30),
        || async {
            consumer
                .session
                .statement(c.id)
                .await
                .is_ok_and(|s| s.matches_chain && s.chain_charged == units(300_000))
        },
    )
    .await;
    assert_eq!(settled(&consumer, c.id).await, units(300_000));
    let log = std::fs::read_to_string(data.path().join("broker.log")).unwrap_or_default();
    for line in [
        "a batch the chain did not settle: sent again",
        "the chain lost the account's link",
        "configurations the chain lost",
    ] {
        assert!(log.contains(line), "{line}: {log}");
    }
    broker.stop();
}
