//! The broker's database: SQLite (embedded) or PostgreSQL through sqlx's `Any` driver, one pool the
//! broker opens and tunes, shared with the catalog's tables so one transaction can change both.
//! Rows are read by column name into row structs and decoded strictly: a value the broker cannot
//! have written is a `Corrupt` error naming the table and column, never a default.

mod auth;
mod maintenance;

pub use auth::AuthError;
pub use maintenance::Retention;

use std::fmt;
use std::str::FromStr;

use catalog::store::{Backend, CatalogStore, StoreError as CatalogError};
use ledger::Deployment;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

/// What the broker stored and cannot read back: a damaged database or a bug, never the caller's
/// doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored data is unreadable: {table}.{column} of {key}: {detail}")]
pub struct Corrupt {
    pub table: &'static str,
    pub column: &'static str,
    pub key: String,
    pub detail: String,
}

impl Corrupt {
    pub fn new(
        table: &'static str,
        column: &'static str,
        key: impl fmt::Display,
        detail: impl fmt::Display,
    ) -> Self {
        Self {
            table,
            column,
            key: key.to_string(),
            detail: detail.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database: {0}")]
    Open(sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    #[error("this database belongs to chain {chain_id} marketplace {marketplace}, not to the ledger in use (chain {want_chain}, marketplace {want_marketplace}); use the data directory that goes with that ledger")]
    ForeignLedger {
        chain_id: i64,
        marketplace: String,
        want_chain: u64,
        want_marketplace: String,
    },
}

/// How the broker sizes its database pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Most open connections; `None`: 4 on SQLite (one writer at a time anyway), 16 on
    /// PostgreSQL.
    pub max_connections: Option<u32>,
}

/// The broker's database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    catalog: CatalogStore,
}

impl Store {
    /// Opens (and migrates) the database at `url` on a pool of the broker's own.
    pub async fn open(url: &str, size: PoolSize) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let max = size.max_connections.unwrap_or(match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        });
        let pool = AnyPoolOptions::new()
            .max_connections(max.max(1))
            .acquire_timeout(std::time::Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        catalog::store::prepare_sqlite(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(StoreError::Open)?;
        let catalog = CatalogStore::attach(pool.clone(), backend).await?;
        // Shared SQL first, then what differs per backend; versions never collide.
        let specific = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        for mut migrator in [sqlx::migrate!("./migrations/shared"), specific] {
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await?;
        }
        Ok(Self { pool, catalog })
    }

    pub fn catalog(&self) -> &CatalogStore {
        &self.catalog
    }

    pub fn backend(&self) -> Backend {
        self.catalog.backend()
    }

    /// A write transaction (`BEGIN IMMEDIATE` on SQLite, so read-then-write never fails on a lock
    /// upgrade).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend() {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Binds a new database to `deployment`, or checks an existing one is bound to it.
    pub async fn bind_ledger(&self, deployment: &Deployment) -> Result<(), StoreError> {
        let marketplace = deployment.contracts.marketplace.to_string();
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT chain_id, marketplace FROM ledger_binding WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some((chain_id, bound))
                if u64::try_from(chain_id) == Ok(deployment.chain_id) && bound == marketplace =>
            {
                Ok(())
            }
            Some((chain_id, bound)) => Err(StoreError::ForeignLedger {
                chain_id,
                marketplace: bound,
                want_chain: deployment.chain_id,
                want_marketplace: marketplace,
            }),
            None => {
                sqlx::query(
                    "INSERT INTO ledger_binding (id, chain_id, marketplace, deployment_block, bound_at) \
                     VALUES (1, $1, $2, $3, $4)",
                )
                .bind(deployment.chain_id as i64)
                .bind(marketplace.clone())
                .bind(deployment.deployment_block as i64)
                .bind(now() as i64)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    }
}

/// The broker's clock: unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Strict decoding of stored values: each names what it read when it fails.
pub struct Decode<'a> {
    pub table: &'static str,
    pub key: &'a str,
}

impl Decode<'_> {
    /// A stored integer that cannot be negative.
    pub fn u64(&self, column: &'static str, v: i64) -> Result<u64, Corrupt> {
        u64::try_from(v).map_err(|_| Corrupt::new(self.table, column, self.key, v))
    }

    pub fn u32(&self, column: &'static str, v: i64) -> Result<u32, Corrupt> {
        u32::try_from(v).map_err(|_| Corrupt::new(self.table, column, self.key, v))
    }

    pub fn opt_u64(&self, column: &'static str, v: Option<i64>) -> Result<Option<u64>, Corrupt> {
        v.map(|v| self.u64(column, v)).transpose()
    }

    /// A stored text that parses into `T`.
    pub fn parse<T: FromStr>(&self, column: &'static str, v: &str) -> Result<T, Corrupt>
    where
        T::Err: fmt::Display,
    {
        v.parse()
            .map_err(|e| Corrupt::new(self.table, column, self.key, format!("{v:?}: {e}")))
    }

    pub fn opt_parse<T: FromStr>(
        &self,
        column: &'static str,
        v: Option<&str>,
    ) -> Result<Option<T>, Corrupt>
    where
        T::Err: fmt::Display,
    {
        v.map(|v| self.parse(column, v)).transpose()
    }

    /// A stored JSON document.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        column: &'static str,
        v: &str,
    ) -> Result<T, Corrupt> {
        serde_json::from_str(v).map_err(|e| Corrupt::new(self.table, column, self.key, e))
    }

    /// A stored enum, by its name.
    pub fn named<T>(
        &self,
        column: &'static str,
        v: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, Corrupt> {
        parse(v).ok_or_else(|| {
            Corrupt::new(self.table, column, self.key, format!("unknown value {v:?}"))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloy::primitives::Address;
    use ledger::deployment::{ContractAddresses, FORMAT_VERSION};

    pub(crate) async fn temp_store() -> (tempfile::TempDir, Store) {
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
        (dir, store)
    }

    fn deployment(chain_id: u64, marketplace: u8) -> Deployment {
        let a = Address::repeat_byte;
        Deployment {
            format_version: FORMAT_VERSION,
            chain_id,
            deployment_block: 1,
            deployer: a(1),
            broker: a(2),
            contracts: ContractAddresses {
                credit_token: a(3),
                participant_registry: a(4),
                marketplace: a(marketplace),
                billing_models: a(6),
                usage_settlement: a(7),
                credential_registry: a(8),
            },
        }
    }

    #[tokio::test]
    async fn a_database_stays_with_the_ledger_it_was_bound_to() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("b.sqlite").display()
        );
        let size = PoolSize {
            max_connections: None,
        };
        let store = Store::open(&url, size).await.unwrap();
        store.bind_ledger(&deployment(31337, 5)).await.unwrap();
        store.bind_ledger(&deployment(31337, 5)).await.unwrap();
        for other in [deployment(1337, 5), deployment(31337, 9)] {
            let err = store.bind_ledger(&other).await.unwrap_err();
            assert!(matches!(err, StoreError::ForeignLedger { .. }), "{err}");
        }
        // Reopening runs no migration twice and keeps the binding.
        drop(store);
        let store = Store::open(&url, size).await.unwrap();
        assert!(store.bind_ledger(&deployment(1337, 5)).await.is_err());
    }

    #[test]
    fn corrupt_values_are_named() {
        let d = Decode {
            table: "contracts",
            key: "0x1",
        };
        assert_eq!(d.u64("deadline", 5), Ok(5));
        let e = d.u64("deadline", -1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stored data is unreadable: contracts.deadline of 0x1: -1"
        );
        let e = d
            .named("state", "paused", api::ContractState::parse)
            .unwrap_err();
        assert!(e.to_string().contains("contracts.state") && e.to_string().contains("paused"));
        assert!(d.parse::<api::Credits>("refund", "12x").is_err());
    }
}
