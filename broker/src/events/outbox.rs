//! The transactional outbox: `emit` inserts the event in the caller's transaction, so an event
//! exists exactly when its change was committed.

use catalog::store::Backend;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::identity::{Principal, Role};

/// What happened; the routing key on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    OfferPublished,
    OfferUpdated,
    OfferWithdrawn,
    ReservationCreated,
    ReservationExpired,
    ContractProposed,
    ContractAccepted,
    ContractActivated,
    ContractFailed,
    ContractClosed,
    ProviderConfigChanged,
    AccountLinked,
    CredentialIssued,
    CredentialRotated,
    CredentialRevoked,
    UsageSettled,
    EscrowLow,
    ContractSuspended,
    ContractResumed,
}

impl Topic {
    pub const ALL: [Topic; 19] = [
        Self::OfferPublished,
        Self::OfferUpdated,
        Self::OfferWithdrawn,
        Self::ReservationCreated,
        Self::ReservationExpired,
        Self::ContractProposed,
        Self::ContractAccepted,
        Self::ContractActivated,
        Self::ContractFailed,
        Self::ContractClosed,
        Self::ProviderConfigChanged,
        Self::AccountLinked,
        Self::CredentialIssued,
        Self::CredentialRotated,
        Self::CredentialRevoked,
        Self::UsageSettled,
        Self::EscrowLow,
        Self::ContractSuspended,
        Self::ContractResumed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OfferPublished => "offer.published",
            Self::OfferUpdated => "offer.updated",
            Self::OfferWithdrawn => "offer.withdrawn",
            Self::ReservationCreated => "reservation.created",
            Self::ReservationExpired => "reservation.expired",
            Self::ContractProposed => "contract.proposed",
            Self::ContractAccepted => "contract.accepted",
            Self::ContractActivated => "contract.activated",
            Self::ContractFailed => "contract.failed",
            Self::ContractClosed => "contract.closed",
            Self::ProviderConfigChanged => "provider.config_changed",
            Self::AccountLinked => "participant.account_linked",
            Self::CredentialIssued => "credential.issued",
            Self::CredentialRotated => "credential.rotated",
            Self::CredentialRevoked => "credential.revoked",
            Self::UsageSettled => "usage.settled",
            Self::EscrowLow => "contract.escrow_low",
            Self::ContractSuspended => "contract.suspended",
            Self::ContractResumed => "contract.resumed",
        }
    }
}

/// Who may see an event: everyone (catalog changes) or the named participants; auditors and
/// operators see every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    Only(Vec<String>),
}

impl Audience {
    pub fn parties(dids: &[&str]) -> Self {
        Self::Only(dids.iter().map(|d| d.to_string()).collect())
    }

    fn encode(&self) -> String {
        match self {
            Self::Everyone => "*".into(),
            Self::Only(dids) => dids.join(","),
        }
    }

    fn decode(s: &str) -> Self {
        if s == "*" {
            Self::Everyone
        } else {
            Self::Only(s.split(',').map(str::to_string).collect())
        }
    }

    pub fn admits(&self, who: &Principal) -> bool {
        match self {
            Self::Everyone => true,
            Self::Only(_) if matches!(who.role, Role::Auditor | Role::Operator) => true,
            Self::Only(dids) => dids.contains(&who.did),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub seq: u64,
    pub topic: String,
    pub subject: String,
    #[serde(skip)]
    pub audience: Audience,
    pub payload: serde_json::Value,
    pub at: u64,
}

/// PostgreSQL: outbox inserts are serialised to commit order, so a reader that has seen `seq`
/// never later finds a smaller one committed. SQLite serialises writers already.
const OUTBOX_LOCK: i64 = 7270002;

/// Writes an event in `tx`; it is relayed once `tx` commits. Call it last in the transaction.
pub async fn emit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    topic: Topic,
    subject: &str,
    audience: &Audience,
    payload: serde_json::Value,
    now: u64,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(OUTBOX_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO outbox (topic, subject, audience, payload, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(topic.as_str())
    .bind(subject.to_string())
    .bind(audience.encode())
    .bind(payload.to_string())
    .bind(now as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn event(r: &AnyRow) -> Event {
    let payload: String = r.get(4);
    Event {
        seq: r.get::<i64, _>(0) as u64,
        topic: r.get(1),
        subject: r.get(2),
        audience: Audience::decode(&r.get::<String, _>(3)),
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        at: r.get::<i64, _>(5) as u64,
    }
}

const COLUMNS: &str = "seq, topic, subject, audience, payload, at";

/// Events after `seq`, oldest first.
pub async fn since<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    seq: u64,
    limit: u32,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(seq as i64)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(event).collect())
}

/// Events not yet on the bus, oldest first.
pub async fn unpublished<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
    limit: u32,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(event).collect())
}

/// The newest event's sequence number (0 when there is none).
pub async fn head<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    db: E,
) -> Result<u64, sqlx::Error> {
    let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) FROM outbox")
        .fetch_one(db)
        .await?;
    Ok(row.get::<i64, _>(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(did: &str, role: Role) -> Principal {
        Principal {
            did: did.into(),
            role,
            expires_at: 0,
        }
    }

    #[test]
    fn audiences_admit_parties_and_overseers_only() {
        let a = Audience::parties(&["did:key:c", "did:key:p"]);
        assert_eq!(Audience::decode(&a.encode()), a);
        assert!(a.admits(&who("did:key:c", Role::Consumer)));
        assert!(a.admits(&who("did:key:p", Role::Provider)));
        assert!(!a.admits(&who("did:key:x", Role::Consumer)));
        assert!(!a.admits(&who("did:key:x", Role::Provider)));
        assert!(a.admits(&who("did:key:x", Role::Auditor)));
        assert!(a.admits(&who("did:key:x", Role::Operator)));
        assert!(Audience::Everyone.admits(&who("did:key:x", Role::Consumer)));
        let names: std::collections::HashSet<_> = Topic::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), Topic::ALL.len());
    }
}
