//! What the broker's chain tests share: a development chain with the broker's relayer, a
//! registered consumer and provider, contracts between them, and a `Market` over a store.

#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use broker::ledger_link::LedgerLink;
use broker::market::{Market, MarketPolicy};
use broker::store::{PoolSize, Store};
use content::{ContentStore, EmbeddedStore};
use ledger::accounts::{dev_signer, BROKER_INDEX};
use ledger::anvil::AnvilOptions;
use ledger::devnet::Devnet;
use ledger::{devnet, ChainClient, Deployment};
use testkit::dev;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub net: Devnet,
    /// The broker's relayer.
    pub broker: ChainClient,
    pub consumer: PrivateKeySigner,
    pub provider: PrivateKeySigner,
    pub content: Arc<dyn ContentStore>,
}

impl Fixture {
    /// A fresh chain with the consumer and provider registered.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = AnvilOptions {
            port: 0,
            ..AnvilOptions::new(dir.path().join("ledger"))
        };
        let net = devnet::up(&options, |_| {}).await.unwrap();
        let broker = ChainClient::connect(net.chain.url(), dev_signer(BROKER_INDEX).unwrap())
            .await
            .unwrap();
        let (consumer, provider) = (dev_signer(4).unwrap(), dev_signer(5).unwrap());
        let d = &net.deployment;
        dev::register(&broker, d, &consumer, "did:key:c", 2)
            .await
            .unwrap();
        dev::register(&broker, d, &provider, "did:key:p", 1)
            .await
            .unwrap();
        let content: Arc<dyn ContentStore> =
            Arc::new(EmbeddedStore::open(dir.path().join("content")).unwrap());
        Self {
            dir,
            net,
            broker,
            consumer,
            provider,
            content,
        }
    }

    pub fn d(&self) -> &Deployment {
        &self.net.deployment
    }

    /// A pay-per-use contract `name` with `deposit` in escrow.
    pub async fn open(&self, name: &str, deposit: u64) -> B256 {
        dev::open_contract(
            &self.broker,
            self.d(),
            &self.consumer,
            self.provider.address(),
            name,
            deposit,
        )
        .await
        .unwrap()
    }

    /// A SQLite store in the fixture's directory.
    pub async fn sqlite(&self) -> Store {
        self.sqlite_named("b").await
    }

    /// The SQLite store `name` in the fixture's directory (opened again: another pool on it).
    pub async fn sqlite_named(&self, name: &str) -> Store {
        open_store(&format!(
            "sqlite://{}?mode=rwc",
            self.dir.path().join(format!("{name}.sqlite")).display()
        ))
        .await
    }

    /// A market over `store` whose chain calls `client` sends.
    pub fn market(&self, store: Store, client: ChainClient, policy: MarketPolicy) -> Market {
        Market::new(
            store,
            LedgerLink {
                client,
                deployment: self.d().clone(),
            },
            self.content.clone(),
            policy,
        )
    }
}

pub async fn open_store(url: &str) -> Store {
    Store::open(
        url,
        PoolSize {
            max_connections: None,
        },
    )
    .await
    .unwrap()
}

/// Accepted usage records as the broker stores them, `(id, contract, amount)`, received in the
/// order given (record ids are `[A-Za-z0-9._-]`).
pub async fn insert_records(store: &Store, records: &[(String, B256, u64)]) {
    for (c, chunk) in records.chunks(500).enumerate() {
        let values: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, (rid, contract, amount))| {
                format!(
                    "('{rid}', '{contract}', 'p', 'c', 0, 1, '{{\"id\":\"{rid}\"}}', '{}', '{amount}', {})",
                    alloy::primitives::keccak256(rid.as_bytes()),
                    c * 500 + i
                )
            })
            .collect();
        sqlx::query(&format!(
            "INSERT INTO usage_records (id, contract_id, provider, consumer, from_ts, to_ts, body, record_hash, amount, received_at) VALUES {}",
            values.join(",")
        ))
        .execute(store.pool())
        .await
        .unwrap();
    }
}
