//! Development chains shared by the tests of this binary, with the contracts deployed as
//! `ledger-node up` does: as many chains as there are cores, started once on a thread of their own
//! (Anvil dies with the binary) instead of one per test; each test takes a chain at its pristine
//! state (a snapshot taken after deployment is reverted to before the next test starts) and has
//! it to itself until it ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use alloy::primitives::{Address, Bytes, FixedBytes, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolInterface, SolStruct};
use contracts::eip712;
use contracts::{CreditToken, Marketplace, ParticipantRegistry, CREDIT};
use ledger::accounts::{dev_signer, BROKER_INDEX, DEPLOYER_INDEX};
use ledger::anvil::AnvilOptions;
use ledger::client::ClientError;
use ledger::deployment::Deployment;
use ledger::devnet;
use ledger::ChainClient;
use tokio::sync::{Mutex, MutexGuard};

pub struct Actor {
    pub signer: PrivateKeySigner,
    pub client: ChainClient,
}

impl Actor {
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    pub fn sign<T: SolStruct>(
        &self,
        message: &T,
        domain: &alloy::sol_types::Eip712Domain,
    ) -> Bytes {
        eip712::sign(&self.signer, message, domain).unwrap()
    }

    pub async fn call<C: SolCall>(&self, to: Address, call: C) -> Result<(), ClientError> {
        self.client.send_call(to, &call).await.map(|_| ())
    }
}

/// One shared chain: where it answers, what is deployed, and who has it (with the pristine
/// snapshot the next test starts from).
struct Slot {
    url: String,
    deployment: Deployment,
    turn: Mutex<Option<String>>,
}

static SLOTS: OnceLock<Vec<Slot>> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn slots() -> &'static [Slot] {
    SLOTS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut keep = Vec::new();
                for _ in 0..n {
                    let dir = tempfile::tempdir().unwrap();
                    let options = AnvilOptions {
                        port: 0,
                        ..AnvilOptions::new(dir.path())
                    };
                    let net = devnet::up(&options, |_| {}).await.expect("devnet up");
                    tx.send((net.chain.url().to_string(), net.deployment.clone()))
                        .unwrap();
                    keep.push((dir, net));
                }
                // Held for the binary's life; the chains stop with this thread.
                std::future::pending::<()>().await;
            });
        });
        (0..n)
            .map(|_| {
                let (url, deployment) = rx.recv().expect("the chain starts");
                Slot {
                    url,
                    deployment,
                    turn: Mutex::new(None),
                }
            })
            .collect()
    })
}

async fn rpc(url: &str, method: &'static str, params: serde_json::Value) -> serde_json::Value {
    ledger::anvil::dev_rpc(url, method, params).await.unwrap()
}

pub struct Chain {
    deployment: &'static Deployment,
    pub admin: Actor,
    pub broker: Actor,
    /// Funded development accounts 2.. (1,000,000 credits each).
    pub users: Vec<Actor>,
    _turn: MutexGuard<'static, Option<String>>,
}

impl Chain {
    /// A chain at its pristine state, this test's alone until it ends.
    pub async fn start() -> Self {
        let slots = slots();
        // A free chain if there is one, else wait for one in turn.
        let free = slots
            .iter()
            .find_map(|s| s.turn.try_lock().ok().map(|t| (s, t)));
        let (slot, mut turn) = match free {
            Some(found) => found,
            None => {
                let s = &slots[NEXT.fetch_add(1, Ordering::Relaxed) % slots.len()];
                (s, s.turn.lock().await)
            }
        };
        if let Some(snapshot) = turn.take() {
            let reverted = rpc(&slot.url, "evm_revert", serde_json::json!([snapshot])).await;
            assert_eq!(reverted, serde_json::Value::Bool(true), "back to pristine");
        }
        // A revert spends its snapshot: take it again for the next test.
        let snapshot = rpc(&slot.url, "evm_snapshot", serde_json::json!([])).await;
        *turn = Some(snapshot.as_str().expect("a snapshot id").to_string());
        let url = &slot.url;
        let actor = |i: u32| async move {
            let signer = dev_signer(i).unwrap();
            let client = ChainClient::connect(url, signer.clone()).await.unwrap();
            Actor { signer, client }
        };
        let admin = actor(DEPLOYER_INDEX).await;
        let broker = actor(BROKER_INDEX).await;
        let mut users = Vec::new();
        for i in 2..8 {
            users.push(actor(i).await);
        }
        Self {
            deployment: &slot.deployment,
            admin,
            broker,
            users,
            _turn: turn,
        }
    }

    pub fn d(&self) -> &Deployment {
        self.deployment
    }

    pub fn chain_id(&self) -> u64 {
        self.d().chain_id
    }

    pub async fn balance(&self, who: Address) -> U256 {
        let token = CreditToken::new(
            self.d().contracts.credit_token,
            self.admin.client.provider(),
        );
        token.balanceOf(who).call().await.unwrap()
    }

    pub async fn agreement(&self, id: B256) -> Marketplace::Agreement {
        Marketplace::new(self.d().contracts.marketplace, self.admin.client.provider())
            .agreement(id)
            .call()
            .await
            .unwrap()
    }

    pub async fn advance(&self, seconds: u64) {
        ledger::anvil::advance(self.admin.client.url(), seconds)
            .await
            .unwrap();
    }

    pub async fn now(&self) -> u64 {
        let block = self
            .admin
            .client
            .provider()
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .unwrap();
        block.header.timestamp
    }

    /// Registers `who` with `role` (1 provider, 2 consumer, 3 auditor, 4 operator).
    pub async fn register(&self, who: &Actor, did: &str, role: u8) {
        let registry = self.d().contracts.participant_registry;
        let deadline = U256::from(self.now().await + 3600);
        let nonce = ParticipantRegistry::new(registry, self.admin.client.provider())
            .nonces(who.address())
            .call()
            .await
            .unwrap();
        let link = eip712::Link {
            did: did.into(),
            account: who.address(),
            role,
            nonce,
            deadline,
        };
        let sig = who.sign(&link, &eip712::registry_domain(self.chain_id(), registry));
        self.broker
            .call(
                registry,
                ParticipantRegistry::registerCall {
                    did: did.into(),
                    account: who.address(),
                    role,
                    deadline,
                    signature: sig,
                },
            )
            .await
            .unwrap();
    }

    pub async fn approve(&self, who: &Actor, amount: U256) {
        who.call(
            self.d().contracts.credit_token,
            CreditToken::approveCall {
                spender: self.d().contracts.marketplace,
                value: amount,
            },
        )
        .await
        .unwrap();
    }

    /// An open request for `consumer` → `provider`, signed by the consumer, with the default
    /// usage bound (`Bound::default_for`).
    pub async fn open_request(
        &self,
        id: B256,
        consumer: &Actor,
        provider: &Actor,
        deposit: U256,
        period_price: U256,
        period: u64,
    ) -> (Marketplace::OpenRequest, Bytes) {
        let bound = Bound::default_for(deposit, period);
        self.open_request_bounded(id, consumer, provider, deposit, period_price, period, bound)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn open_request_bounded(
        &self,
        id: B256,
        consumer: &Actor,
        provider: &Actor,
        deposit: U256,
        period_price: U256,
        period: u64,
        bound: Bound,
    ) -> (Marketplace::OpenRequest, Bytes) {
        let deadline = U256::from(self.now().await + 3600);
        let message = eip712::OpenContract {
            contractId: id,
            consumer: consumer.address(),
            provider: provider.address(),
            termsHash: alloy::primitives::keccak256(id),
            termsCid: "bafkreiterms".into(),
            deposit,
            periodPrice: period_price,
            period,
            prices: bound.prices,
            usageCap: bound.cap,
            capWindow: bound.window,
            deadline,
        };
        let sig = consumer.sign(
            &message,
            &eip712::marketplace_domain(self.chain_id(), self.d().contracts.marketplace),
        );
        (message.into(), sig)
    }

    /// Opens a funded users[1] → users[0] contract with the usage bound given.
    pub async fn open_bounded(&self, id: B256, deposit: U256, bound: Bound) {
        self.open_with(id, deposit, U256::ZERO, 0, bound).await;
    }

    /// Registers users[0] as provider, users[1] as consumer, and opens a funded contract.
    pub async fn open_contract(&self, id: B256, deposit: U256, period_price: U256, period: u64) {
        let bound = Bound::default_for(deposit, period);
        self.open_with(id, deposit, period_price, period, bound)
            .await;
    }

    async fn open_with(
        &self,
        id: B256,
        deposit: U256,
        period_price: U256,
        period: u64,
        bound: Bound,
    ) {
        let (provider, consumer) = (&self.users[0], &self.users[1]);
        self.ensure_registered().await;
        self.approve(consumer, deposit).await;
        let (req, sig) = self
            .open_request_bounded(id, consumer, provider, deposit, period_price, period, bound)
            .await;
        self.broker
            .call(
                self.d().contracts.marketplace,
                Marketplace::openCall {
                    req,
                    consumerSig: sig,
                    signaturesCid: "bafkreisignatures".into(),
                },
            )
            .await
            .unwrap();
    }

    pub async fn ensure_registered(&self) {
        let registry = ParticipantRegistry::new(
            self.d().contracts.participant_registry,
            self.admin.client.provider(),
        );
        if registry
            .roleOf(self.users[0].address())
            .call()
            .await
            .unwrap()
            == 0
        {
            self.register(&self.users[0], "did:key:provider0", 1).await;
        }
        if registry
            .roleOf(self.users[1].address())
            .call()
            .await
            .unwrap()
            == 0
        {
            self.register(&self.users[1], "did:key:consumer1", 2).await;
        }
    }
}

/// The consumer's signed bound on usage charges.
#[derive(Debug, Clone)]
pub struct Bound {
    pub prices: eip712::UsagePrices,
    pub cap: U256,
    pub window: u64,
}

impl Bound {
    /// A pay-per-use contract (no period) bounds usage at `test_prices()` and the deposit per
    /// hour; a reserved one takes no usage charges.
    pub fn default_for(deposit: U256, period: u64) -> Self {
        if period == 0 {
            Self {
                prices: test_prices(),
                cap: deposit,
                window: 3600,
            }
        } else {
            Self::none()
        }
    }

    pub fn none() -> Self {
        Self {
            prices: eip712::UsagePrices::default(),
            cap: U256::ZERO,
            window: 0,
        }
    }
}

/// Unit prices: a credit per core-hour, GiB-hour, GPU-hour and GB; a tenth per data access.
pub fn test_prices() -> eip712::UsagePrices {
    eip712::UsagePrices {
        cpuCoreHour: credits(1),
        memoryGibHour: credits(1),
        gpuHour: credits(1),
        networkGb: credits(1),
        dataAccess: credits(1) / U256::from(10),
        gpuRecordFee: U256::ZERO,
    }
}

pub fn credits(n: u64) -> U256 {
    U256::from(n) * U256::from(CREDIT)
}

pub fn id(n: u64) -> B256 {
    alloy::primitives::keccak256(n.to_be_bytes())
}

/// Asserts `result` is a revert that decodes to an error `check` accepts.
#[track_caller]
pub fn assert_revert<E: SolInterface + std::fmt::Debug>(
    result: Result<(), ClientError>,
    check: impl FnOnce(&E) -> bool,
) {
    let err = result.expect_err("expected a revert");
    let decoded = err
        .decode_revert::<E>()
        .unwrap_or_else(|| panic!("not a decodable revert: {err}"));
    assert!(check(&decoded), "unexpected revert: {decoded:?}");
}

pub fn bytes32(s: &str) -> FixedBytes<32> {
    let mut b = [0u8; 32];
    b[..s.len()].copy_from_slice(s.as_bytes());
    FixedBytes(b)
}

/// A settlement batch for tests: each contract's leaves (record hash, amount) under it.
pub struct TestBatch {
    pub id: B256,
    pub groups: Vec<(B256, Vec<(B256, U256)>)>,
    pub tree: contracts::merkle::BatchTree,
}

impl TestBatch {
    pub fn new(id: B256, groups: Vec<(B256, Vec<(B256, U256)>)>) -> Self {
        let tree = contracts::merkle::BatchTree::new(&groups).unwrap();
        Self { id, groups, tree }
    }

    /// One leaf per contract, charged its amount.
    pub fn simple(id: B256, contracts: &[B256], amounts: &[U256]) -> Self {
        let groups = contracts
            .iter()
            .zip(amounts)
            .map(|(c, a)| (*c, vec![(alloy::primitives::keccak256(c), *a)]))
            .collect();
        Self::new(id, groups)
    }

    /// Charges each contract the sum of its leaves.
    pub fn call(&self) -> contracts::UsageSettlement::settleCall {
        let amounts = self
            .groups
            .iter()
            .map(|(_, ls)| ls.iter().map(|(_, a)| *a).sum())
            .collect();
        self.call_with(amounts)
    }

    /// Charges each contract what `amounts` says, whatever its leaves sum to.
    pub fn call_with(&self, amounts: Vec<U256>) -> contracts::UsageSettlement::settleCall {
        contracts::UsageSettlement::settleCall {
            batchId: self.id,
            merkleRoot: self.tree.root(),
            recordsCid: "bafkreibatch".into(),
            recordCount: self.groups.iter().map(|(_, l)| l.len() as u32).sum(),
            contractIds: self.groups.iter().map(|(c, _)| *c).collect(),
            amounts,
        }
    }

    /// The paths of leaf `record` of the `contract`-th contract, as the contract takes them.
    pub fn paths(
        &self,
        contract: usize,
        record: usize,
    ) -> (
        Vec<contracts::UsageSettlement::Step>,
        Vec<contracts::UsageSettlement::Step>,
    ) {
        let p = self.tree.proof(contract, record).unwrap();
        let conv = |v: Vec<contracts::merkle::Step>| v.iter().map(Into::into).collect();
        (conv(p.record_path), conv(p.contract_path))
    }
}
