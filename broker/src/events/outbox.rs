//! The transactional outbox: `emit` inserts the event in the caller's transaction, so an event
//! exists exactly when its change was committed.

use api::{Event, EventBody, Principal};
use catalog::store::Backend;
use sqlx::Transaction;

use crate::store::{Corrupt, Decode, Store, StoreError};

/// Who may see an event: everyone (catalog changes) or the named participants; auditors and
/// operators see every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    Only(Vec<String>),
}

impl Audience {
    pub fn parties<D: AsRef<str>>(dids: &[D]) -> Self {
        Self::Only(dids.iter().map(|d| d.as_ref().to_string()).collect())
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
            Self::Only(_) if who.role.oversees() => true,
            Self::Only(dids) => dids.iter().any(|d| d == who.did.as_str()),
        }
    }
}

/// An event to write at the end of a transaction.
#[derive(Debug, Clone)]
pub struct Pending {
    pub subject: String,
    pub audience: Audience,
    pub body: EventBody,
}

/// An event as the outbox holds it: the public event and who may see it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: Event,
    pub audience: Audience,
}

/// PostgreSQL: outbox inserts are serialised to commit order, so a reader that has seen `seq`
/// never later finds a smaller one committed. SQLite serialises writers already.
const OUTBOX_LOCK: i64 = 7270002;

/// Writes `events` in `tx`; they are published once `tx` commits. Call it last in the
/// transaction.
pub async fn emit(
    tx: &mut Transaction<'_, sqlx::Any>,
    backend: Backend,
    events: Vec<Pending>,
    now: u64,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(OUTBOX_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    for e in events {
        sqlx::query(
            "INSERT INTO outbox (topic, subject, audience, payload, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(e.body.topic().as_str())
        .bind(e.subject)
        .bind(e.audience.encode())
        .bind(e.body.payload_json().to_string())
        .bind(now as i64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    topic: String,
    subject: String,
    audience: String,
    payload: String,
    at: i64,
}

impl OutboxRow {
    fn decode(self) -> Result<StoredEvent, Corrupt> {
        let key = self.seq.to_string();
        let d = Decode {
            table: "outbox",
            key: &key,
        };
        let payload: serde_json::Value = d.json("payload", &self.payload)?;
        let body = EventBody::from_parts(&self.topic, payload)
            .map_err(|e| Corrupt::new("outbox", "payload", &key, e))?;
        Ok(StoredEvent {
            event: Event {
                seq: d.u64("seq", self.seq)?,
                subject: self.subject,
                at: d.u64("at", self.at)?,
                body,
            },
            audience: Audience::decode(&self.audience),
        })
    }
}

const COLUMNS: &str = "seq, topic, subject, audience, payload, at";

/// An outbox row as read: its sequence number and the event, or what makes it unreadable.
pub type ReadEvent = (u64, Result<StoredEvent, Corrupt>);

fn decode_all(rows: Vec<OutboxRow>) -> Vec<ReadEvent> {
    rows.into_iter()
        .map(|r| (r.seq.max(0) as u64, r.decode()))
        .collect()
}

/// Events after `seq`, oldest first; an unreadable row comes back as its `Corrupt` error, so a
/// reader names it and goes on.
pub async fn since(store: &Store, seq: u64, limit: u32) -> Result<Vec<ReadEvent>, StoreError> {
    let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(seq as i64)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    Ok(decode_all(rows))
}

/// An event as the external bus carries it: the row as stored, published even when this broker
/// cannot read it (the bus's consumers decide).
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub seq: u64,
    pub topic: String,
    pub subject: String,
    pub payload: String,
    pub at: u64,
}

impl RawEvent {
    /// The message body: the same JSON as the event stream's `data`.
    pub fn to_json(&self) -> Vec<u8> {
        let payload = serde_json::from_str::<serde_json::Value>(&self.payload)
            .unwrap_or_else(|_| serde_json::Value::String(self.payload.clone()));
        serde_json::to_vec(&serde_json::json!({
            "seq": self.seq, "subject": self.subject, "at": self.at,
            "topic": self.topic, "payload": payload,
        }))
        .expect("JSON values serialise")
    }
}

/// Events not yet on the external bus, oldest first (in the caller's transaction).
pub async fn unpublished(
    tx: &mut Transaction<'_, sqlx::Any>,
    limit: u32,
) -> Result<Vec<RawEvent>, StoreError> {
    let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RawEvent {
            seq: r.seq.max(0) as u64,
            topic: r.topic,
            subject: r.subject,
            payload: r.payload,
            at: r.at.max(0) as u64,
        })
        .collect())
}

/// The newest event's sequence number (0 when there is none).
pub async fn head(store: &Store) -> Result<u64, StoreError> {
    let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox")
        .fetch_one(store.pool())
        .await?;
    Ok(Decode {
        table: "outbox",
        key: "head",
    }
    .u64("seq", seq)?)
}

/// Commits `tx` with `events` in its outbox, so the change and its events exist together or not
/// at all; the caller then wakes the hub and relay.
pub async fn commit(
    store: &Store,
    mut tx: Transaction<'static, sqlx::Any>,
    events: Vec<Pending>,
    now: u64,
) -> Result<(), StoreError> {
    emit(&mut tx, store.backend(), events, now).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::Role;

    fn who(did: &identity::Did, role: Role) -> Principal {
        Principal {
            did: did.clone(),
            role,
            expires_at: 0,
        }
    }

    #[test]
    fn audiences_admit_parties_and_overseers_only() {
        let new = || identity::did_of(&identity::generate().verifying_key());
        let (c, p, x) = (new(), new(), new());
        let a = Audience::parties(&[&c, &p]);
        assert_eq!(Audience::decode(&a.encode()), a);
        assert!(a.admits(&who(&c, Role::Consumer)));
        assert!(a.admits(&who(&p, Role::Provider)));
        assert!(!a.admits(&who(&x, Role::Consumer)));
        assert!(!a.admits(&who(&x, Role::Provider)));
        assert!(a.admits(&who(&x, Role::Auditor)));
        assert!(a.admits(&who(&x, Role::Operator)));
        assert!(Audience::Everyone.admits(&who(&x, Role::Consumer)));
    }

    #[tokio::test]
    async fn an_unreadable_event_is_named_not_skipped() {
        let (_d, store) = crate::store::tests::temp_store().await;
        sqlx::query("INSERT INTO outbox (topic, subject, audience, payload, at) VALUES ('offer.exploded', 'x', '*', '{}', 1)")
            .execute(store.pool())
            .await
            .unwrap();
        let read = since(&store, 0, 10).await.unwrap();
        assert_eq!(read.len(), 1);
        let err = read[0].1.as_ref().unwrap_err();
        assert!(err.to_string().contains("outbox.payload"), "{err}");
    }
}
