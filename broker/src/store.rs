//! The broker's database (SQLite embedded; PostgreSQL comes with the catalog's storage).

use ledger::Deployment;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("this database belongs to chain {chain_id} marketplace {marketplace}, not to the ledger in use (chain {want_chain}, marketplace {want_marketplace}); use the data directory that goes with that ledger")]
    ForeignLedger {
        chain_id: i64,
        marketplace: String,
        want_chain: u64,
        want_marketplace: String,
    },
}

/// The broker's database: SQLite (embedded) or PostgreSQL, through sqlx's `Any` driver. The
/// catalog's tables live in the same database (their migrations have other version numbers).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                url: url.to_string(),
                source,
            })?;
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
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
                if chain_id as u64 == deployment.chain_id && bound == marketplace =>
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
                .bind(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64),
                )
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;
    use ledger::deployment::{ContractAddresses, FORMAT_VERSION};

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
        let store = Store::open(&url).await.unwrap();
        store.bind_ledger(&deployment(31337, 5)).await.unwrap();
        store.bind_ledger(&deployment(31337, 5)).await.unwrap();
        for other in [deployment(1337, 5), deployment(31337, 9)] {
            let err = store.bind_ledger(&other).await.unwrap_err();
            assert!(matches!(err, StoreError::ForeignLedger { .. }), "{err}");
        }
        // Reopening runs no migration twice and keeps the binding.
        drop(store);
        let store = Store::open(&url).await.unwrap();
        assert!(store.bind_ledger(&deployment(1337, 5)).await.is_err());
    }
}
