//! Participants, login challenges and bearer tokens in the database.

use api::{Principal, Role};
use identity::Did;

use super::{Decode, Store, StoreError};

/// Why a login or a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the challenge is unknown, already used, expired or for another participant; ask for a new one")]
    BadChallenge,
    #[error("the token is unknown or expired; log in again")]
    BadToken,
    #[error("{0} is not registered; register it as a provider or consumer first")]
    NotRegistered(Did),
    #[error("{did} is already registered as {role}")]
    AlreadyRegistered { did: Did, role: Role },
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    did: String,
    role: String,
    expires_at: i64,
}

impl Store {
    pub async fn register_participant(
        &self,
        did: &Did,
        role: Role,
        now: u64,
    ) -> Result<(), StoreError> {
        if let Some(existing) = self.participant_role(did).await? {
            return if existing == role {
                Ok(())
            } else {
                Err(AuthError::AlreadyRegistered {
                    did: did.clone(),
                    role: existing,
                }
                .into())
            };
        }
        sqlx::query("INSERT INTO participants (did, role, registered_at) VALUES ($1, $2, $3) ON CONFLICT (did) DO NOTHING")
            .bind(did.to_string())
            .bind(role.as_str())
            .bind(now as i64)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn participant_role(&self, did: &Did) -> Result<Option<Role>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT role FROM participants WHERE did = $1")
            .bind(did.to_string())
            .fetch_optional(self.pool())
            .await?;
        let d = Decode {
            table: "participants",
            key: did.as_str(),
        };
        Ok(row.map(|(r,)| d.parse::<Role>("role", &r)).transpose()?)
    }

    pub async fn create_challenge(
        &self,
        did: &Did,
        nonce: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO auth_challenges (nonce, did, expires_at, used) VALUES ($1, $2, $3, 0)",
        )
        .bind(nonce.to_string())
        .bind(did.to_string())
        .bind(expires_at as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks the challenge used, atomically: of two concurrent logins with one challenge, one
    /// wins. Returns when it expires.
    pub async fn consume_challenge(
        &self,
        did: &Did,
        nonce: &str,
        now: u64,
    ) -> Result<u64, StoreError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT expires_at FROM auth_challenges WHERE nonce = $1 AND did = $2")
                .bind(nonce.to_string())
                .bind(did.to_string())
                .fetch_optional(self.pool())
                .await?;
        let Some((expires_at,)) = row else {
            return Err(AuthError::BadChallenge.into());
        };
        let done = sqlx::query("UPDATE auth_challenges SET used = 1 WHERE nonce = $1 AND did = $2 AND used = 0 AND expires_at >= $3")
            .bind(nonce.to_string())
            .bind(did.to_string())
            .bind(now as i64)
            .execute(self.pool())
            .await?;
        if done.rows_affected() != 1 {
            return Err(AuthError::BadChallenge.into());
        }
        Ok(Decode {
            table: "auth_challenges",
            key: nonce,
        }
        .u64("expires_at", expires_at)?)
    }

    pub async fn store_token(
        &self,
        token_hash: &str,
        did: &Did,
        role: Role,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO auth_tokens (token_hash, did, role, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash.to_string())
        .bind(did.to_string())
        .bind(role.as_str())
        .bind(expires_at as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Who a token (by its hash) belongs to, while it is valid.
    pub async fn principal(&self, token_hash: &str, now: u64) -> Result<Principal, StoreError> {
        let row: Option<TokenRow> =
            sqlx::query_as("SELECT did, role, expires_at FROM auth_tokens WHERE token_hash = $1")
                .bind(token_hash.to_string())
                .fetch_optional(self.pool())
                .await?;
        let Some(row) = row else {
            return Err(AuthError::BadToken.into());
        };
        let d = Decode {
            table: "auth_tokens",
            key: "(a token)",
        };
        let expires_at = d.u64("expires_at", row.expires_at)?;
        if expires_at < now {
            return Err(AuthError::BadToken.into());
        }
        Ok(Principal {
            did: d.parse("did", &row.did)?,
            role: d.parse("role", &row.role)?,
            expires_at,
        })
    }

    /// The EVM account linked to `did`, if any.
    pub async fn account_of(
        &self,
        did: &Did,
    ) -> Result<Option<alloy::primitives::Address>, StoreError> {
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT account FROM participants WHERE did = $1")
                .bind(did.to_string())
                .fetch_optional(self.pool())
                .await?;
        let d = Decode {
            table: "participants",
            key: did.as_str(),
        };
        Ok(row
            .and_then(|(a,)| a)
            .map(|a| d.parse("account", &a))
            .transpose()?)
    }

    pub async fn set_account(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        did: &Did,
        account: alloy::primitives::Address,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE participants SET account = $1 WHERE did = $2")
            .bind(account.to_string())
            .bind(did.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;

    fn did() -> Did {
        identity::did_of(&identity::generate().verifying_key())
    }

    #[tokio::test]
    async fn challenges_are_single_use_bound_to_their_did_and_expire() {
        let (_d, s) = temp_store().await;
        let (a, b) = (did(), did());
        s.create_challenge(&a, "n1", 100).await.unwrap();
        // Another participant cannot use it.
        assert!(matches!(
            s.consume_challenge(&b, "n1", 50).await,
            Err(StoreError::Auth(AuthError::BadChallenge))
        ));
        assert_eq!(s.consume_challenge(&a, "n1", 50).await.unwrap(), 100);
        // Replayed.
        assert!(matches!(
            s.consume_challenge(&a, "n1", 50).await,
            Err(StoreError::Auth(AuthError::BadChallenge))
        ));
        // Expired.
        s.create_challenge(&a, "n2", 100).await.unwrap();
        assert!(matches!(
            s.consume_challenge(&a, "n2", 101).await,
            Err(StoreError::Auth(AuthError::BadChallenge))
        ));
        // Unknown.
        assert!(s.consume_challenge(&a, "zz", 1).await.is_err());
    }

    #[tokio::test]
    async fn tokens_expire_and_roles_do_not_change_by_re_registering() {
        let (_d, s) = temp_store().await;
        let (a, b) = (did(), did());
        s.register_participant(&a, Role::Consumer, 1).await.unwrap();
        s.register_participant(&a, Role::Consumer, 2).await.unwrap();
        assert!(matches!(
            s.register_participant(&a, Role::Operator, 3).await,
            Err(StoreError::Auth(AuthError::AlreadyRegistered { .. }))
        ));
        assert_eq!(s.participant_role(&a).await.unwrap(), Some(Role::Consumer));
        assert_eq!(s.participant_role(&b).await.unwrap(), None);
        s.store_token("h", &a, Role::Consumer, 10).await.unwrap();
        assert_eq!(s.principal("h", 10).await.unwrap().role, Role::Consumer);
        assert!(matches!(
            s.principal("h", 11).await,
            Err(StoreError::Auth(AuthError::BadToken))
        ));
        assert!(s.principal("other", 1).await.is_err());
    }

    #[tokio::test]
    async fn a_role_the_broker_cannot_have_written_is_an_error_not_a_default() {
        let (_d, s) = temp_store().await;
        let a = did();
        s.store_token("h", &a, Role::Consumer, 10).await.unwrap();
        sqlx::query("UPDATE auth_tokens SET role = 'root'")
            .execute(s.pool())
            .await
            .unwrap();
        let err = s.principal("h", 1).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(c) if c.table == "auth_tokens" && c.column == "role"),
            "{err}"
        );
    }
}
