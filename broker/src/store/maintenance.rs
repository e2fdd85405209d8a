//! Housekeeping: what the database need not keep for ever is pruned on a schedule: login
//! challenges once expired or used, tokens once expired, outbox rows once published (or, with no
//! external bus, once past the retention every event stream may resume within).

use std::time::Duration;

use super::{Store, StoreError};

/// How long published events stay readable for streams that resume after an outage.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub events: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What one pruning pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub challenges: u64,
    pub tokens: u64,
    pub events: u64,
}

impl Store {
    /// Removes spent challenges, expired tokens and events older than the retention that are
    /// published (or need no publishing: `external_bus` false).
    pub async fn prune(
        &self,
        retention: Retention,
        external_bus: bool,
        now: u64,
    ) -> Result<Pruned, StoreError> {
        let challenges =
            sqlx::query("DELETE FROM auth_challenges WHERE used = 1 OR expires_at < $1")
                .bind(now as i64)
                .execute(self.pool())
                .await?
                .rows_affected();
        let tokens = sqlx::query("DELETE FROM auth_tokens WHERE expires_at < $1")
            .bind(now as i64)
            .execute(self.pool())
            .await?
            .rows_affected();
        let before = now.saturating_sub(retention.events.as_secs()) as i64;
        // The newest row always stays: the outbox sequence continues from it.
        let sql = if external_bus {
            "DELETE FROM outbox WHERE at < $1 AND published_at IS NOT NULL AND seq < (SELECT MAX(seq) FROM outbox)"
        } else {
            "DELETE FROM outbox WHERE at < $1 AND seq < (SELECT MAX(seq) FROM outbox)"
        };
        let events = sqlx::query(sql)
            .bind(before)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(Pruned {
            challenges,
            tokens,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;
    use api::Role;

    #[tokio::test]
    async fn spent_challenges_expired_tokens_and_old_events_go() {
        let (_d, s) = temp_store().await;
        let did = identity::did_of(&identity::generate().verifying_key());
        s.create_challenge(&did, "used", 1000).await.unwrap();
        s.consume_challenge(&did, "used", 10).await.unwrap();
        s.create_challenge(&did, "old", 5).await.unwrap();
        s.create_challenge(&did, "live", 1000).await.unwrap();
        s.store_token("old", &did, Role::Consumer, 5).await.unwrap();
        s.store_token("live", &did, Role::Consumer, 1000)
            .await
            .unwrap();
        for (at, published) in [(1, Some(2)), (2, None), (3, Some(4))] {
            sqlx::query("INSERT INTO outbox (topic, subject, audience, payload, at, published_at) VALUES ('offer.published', 'x', '*', '{}', $1, $2)")
                .bind(at as i64)
                .bind(published.map(|p: i64| p))
                .execute(s.pool())
                .await
                .unwrap();
        }
        let retention = Retention {
            events: Duration::from_secs(10),
        };
        let p = s.prune(retention, true, 100).await.unwrap();
        // Events: the unpublished one and the newest stay.
        assert_eq!((p.challenges, p.tokens, p.events), (2, 1, 1));
        assert!(s.consume_challenge(&did, "live", 10).await.is_ok());
        assert!(s.principal("live", 10).await.is_ok());
        let p = s.prune(retention, false, 100).await.unwrap();
        assert_eq!(
            p.events, 1,
            "without an external bus nothing waits for publishing"
        );
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(s.pool())
            .await
            .unwrap();
        assert_eq!(left, 1);
    }
}
