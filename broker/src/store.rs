//! The broker's database (SQLite embedded; PostgreSQL comes with the catalog's storage).

use crate::identity::{Principal, Role};
use catalog::store::{Backend, CatalogStore, StoreError as CatalogError};
use ledger::Deployment;
use sqlx::AnyPool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("this database belongs to chain {chain_id} marketplace {marketplace}, not to the ledger in use (chain {want_chain}, marketplace {want_marketplace}); use the data directory that goes with that ledger")]
    ForeignLedger {
        chain_id: i64,
        marketplace: String,
        want_chain: u64,
        want_marketplace: String,
    },
}

/// The broker's database: SQLite (embedded) or PostgreSQL, through sqlx's `Any` driver. The
/// catalog's tables live in the same database and the same pool (their migrations have other
/// version numbers), so one transaction can change both.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    catalog: CatalogStore,
}

impl Store {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let catalog = CatalogStore::open(url).await?;
        let pool = catalog.pool().clone();
        // Shared SQL first, then what differs per backend; versions never collide.
        let specific = match catalog.backend() {
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
                .bind(crate::identity::now() as i64)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    }
}

/// Why a login or a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the challenge is unknown, already used, expired or for another participant; ask for a new one")]
    BadChallenge,
    #[error("the token is unknown or expired; log in again")]
    BadToken,
    #[error("{0} is not registered; register it as a provider or consumer first")]
    NotRegistered(String),
    #[error("{did} is already registered as {role}")]
    AlreadyRegistered { did: String, role: String },
}

impl Store {
    pub async fn register_participant(
        &self,
        did: &str,
        role: Role,
        now: u64,
    ) -> Result<(), StoreError> {
        let existing: Option<(String,)> =
            sqlx::query_as("SELECT role FROM participants WHERE did = $1")
                .bind(did.to_string())
                .fetch_optional(&self.pool)
                .await?;
        match existing {
            Some((r,)) if r == role.as_str() => Ok(()),
            Some((r,)) => Err(StoreError::Auth(AuthError::AlreadyRegistered {
                did: did.to_string(),
                role: r,
            })),
            None => {
                sqlx::query("INSERT INTO participants (did, role, registered_at) VALUES ($1, $2, $3) ON CONFLICT (did) DO NOTHING")
                    .bind(did.to_string())
                    .bind(role.as_str().to_string())
                    .bind(now as i64)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    }

    pub async fn participant_role(&self, did: &str) -> Result<Option<Role>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT role FROM participants WHERE did = $1")
            .bind(did.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|(r,)| Role::parse(&r)))
    }

    pub async fn create_challenge(
        &self,
        did: &str,
        nonce: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO auth_challenges (nonce, did, expires_at, used) VALUES ($1, $2, $3, 0)",
        )
        .bind(nonce.to_string())
        .bind(did.to_string())
        .bind(expires_at as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks the challenge used, atomically: of two concurrent logins with one challenge, one wins.
    pub async fn consume_challenge(
        &self,
        did: &str,
        nonce: &str,
        now: u64,
    ) -> Result<u64, StoreError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT expires_at FROM auth_challenges WHERE nonce = $1 AND did = $2")
                .bind(nonce.to_string())
                .bind(did.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some((expires_at,)) = row else {
            return Err(StoreError::Auth(AuthError::BadChallenge));
        };
        let done = sqlx::query("UPDATE auth_challenges SET used = 1 WHERE nonce = $1 AND did = $2 AND used = 0 AND expires_at >= $3")
            .bind(nonce.to_string())
            .bind(did.to_string())
            .bind(now as i64)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Auth(AuthError::BadChallenge));
        }
        Ok(expires_at as u64)
    }

    pub async fn store_token(
        &self,
        token_hash: &str,
        did: &str,
        role: Role,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO auth_tokens (token_hash, did, role, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash.to_string())
        .bind(did.to_string())
        .bind(role.as_str().to_string())
        .bind(expires_at as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn principal(&self, token_hash: &str, now: u64) -> Result<Principal, StoreError> {
        let row: Option<(String, String, i64)> =
            sqlx::query_as("SELECT did, role, expires_at FROM auth_tokens WHERE token_hash = $1")
                .bind(token_hash.to_string())
                .fetch_optional(&self.pool)
                .await?;
        match row {
            Some((did, role, expires_at)) if expires_at as u64 >= now => Ok(Principal {
                did,
                role: Role::parse(&role).ok_or(StoreError::Auth(AuthError::BadToken))?,
                expires_at: expires_at as u64,
            }),
            _ => Err(StoreError::Auth(AuthError::BadToken)),
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

#[cfg(test)]
mod auth_tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("b.sqlite").display()
        );
        let store = Store::open(&url).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn challenges_are_single_use_bound_to_their_did_and_expire() {
        let (_d, s) = store().await;
        s.create_challenge("did:key:a", "n1", 100).await.unwrap();
        // Another participant cannot use it.
        assert!(matches!(
            s.consume_challenge("did:key:b", "n1", 50).await,
            Err(StoreError::Auth(AuthError::BadChallenge))
        ));
        assert_eq!(
            s.consume_challenge("did:key:a", "n1", 50).await.unwrap(),
            100
        );
        // Replayed.
        assert!(matches!(
            s.consume_challenge("did:key:a", "n1", 50).await,
            Err(StoreError::Auth(AuthError::BadChallenge))
        ));
        // Expired.
        s.create_challenge("did:key:a", "n2", 100).await.unwrap();
        assert!(matches!(
            s.consume_challenge("did:key:a", "n2", 101).await,
            Err(StoreError::Auth(AuthError::BadChallenge))
        ));
        // Unknown.
        assert!(s.consume_challenge("did:key:a", "zz", 1).await.is_err());
    }

    #[tokio::test]
    async fn tokens_expire_and_roles_do_not_change_by_re_registering() {
        let (_d, s) = store().await;
        s.register_participant("did:key:a", Role::Consumer, 1)
            .await
            .unwrap();
        s.register_participant("did:key:a", Role::Consumer, 2)
            .await
            .unwrap();
        assert!(matches!(
            s.register_participant("did:key:a", Role::Operator, 3).await,
            Err(StoreError::Auth(AuthError::AlreadyRegistered { .. }))
        ));
        assert_eq!(
            s.participant_role("did:key:a").await.unwrap(),
            Some(Role::Consumer)
        );
        assert_eq!(s.participant_role("did:key:b").await.unwrap(), None);
        s.store_token("h", "did:key:a", Role::Consumer, 10)
            .await
            .unwrap();
        assert_eq!(s.principal("h", 10).await.unwrap().role, Role::Consumer);
        assert!(matches!(
            s.principal("h", 11).await,
            Err(StoreError::Auth(AuthError::BadToken))
        ));
        assert!(s.principal("other", 1).await.is_err());
    }
}

impl Store {
    /// The EVM account linked to `did`, if any.
    pub async fn account_of(&self, did: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT account FROM participants WHERE did = $1")
                .bind(did.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|(a,)| a))
    }

    pub async fn set_account(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        did: &str,
        account: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE participants SET account = $1 WHERE did = $2")
            .bind(account.to_string())
            .bind(did.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The provider's newest configuration: (version, cid).
    pub async fn provider_config(&self, did: &str) -> Result<Option<(u64, String)>, StoreError> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT version, cid FROM provider_configs WHERE did = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(did.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(v, c)| (v as u64, c)))
    }
}
