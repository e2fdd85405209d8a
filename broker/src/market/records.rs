//! Reservations, plan capacity and contracts in the database. Every change and the event that
//! reports it commit together.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::MarketError;
use crate::events::outbox::{self, Audience, Topic};
use crate::store::Store;

/// An event to write at the end of a transaction (outbox rows go last; see `outbox::emit`).
pub struct Pending {
    pub topic: Topic,
    pub subject: String,
    pub audience: Audience,
    pub payload: serde_json::Value,
}

pub async fn flush(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    store: &Store,
    events: Vec<Pending>,
    now: u64,
) -> Result<(), sqlx::Error> {
    for e in events {
        outbox::emit(
            tx,
            store.backend(),
            e.topic,
            &e.subject,
            &e.audience,
            e.payload,
            now,
        )
        .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub id: String,
    pub consumer: String,
    pub provider: String,
    pub offer_id: String,
    pub plan_id: String,
    pub quantity: u32,
    pub status: String,
    pub expires_at: u64,
    pub created_at: u64,
    pub document: String,
    pub document_cid: String,
    pub terms: serde_json::Value,
}

fn reservation(r: &AnyRow) -> Reservation {
    Reservation {
        id: r.get(0),
        consumer: r.get(1),
        provider: r.get(2),
        offer_id: r.get(3),
        plan_id: r.get(4),
        quantity: r.get::<i64, _>(5) as u32,
        status: r.get(6),
        expires_at: r.get::<i64, _>(7) as u64,
        created_at: r.get::<i64, _>(8) as u64,
        document: r.get(9),
        document_cid: r.get(10),
        terms: serde_json::from_str(&r.get::<String, _>(11)).unwrap_or_default(),
    }
}

const RESERVATION_COLUMNS: &str = "id, consumer, provider, offer_id, plan_id, quantity, status, expires_at, created_at, document, document_cid, terms";

fn reservation_event(r: &Reservation, topic: Topic) -> Pending {
    Pending {
        topic,
        subject: r.id.clone(),
        audience: Audience::parties(&[&r.consumer, &r.provider]),
        payload: serde_json::json!({
            "reservation": r.id, "offerId": r.offer_id, "planId": r.plan_id,
            "quantity": r.quantity, "expiresAt": r.expires_at,
        }),
    }
}

async fn release_capacity(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    offer_id: &str,
    plan_id: &str,
    quantity: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE plan_capacity SET held = held - $1 WHERE offer_id = $2 AND plan_id = $3")
        .bind(i64::from(quantity))
        .bind(offer_id.to_string())
        .bind(plan_id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Expires the held reservations past their time (of one plan, or all), releasing their units.
async fn expire_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    plan: Option<(&str, &str)>,
    now: u64,
) -> Result<Vec<Pending>, sqlx::Error> {
    let sql = format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE status = 'held' AND expires_at < $1{}",
        if plan.is_some() { " AND offer_id = $2 AND plan_id = $3" } else { " LIMIT 200" }
    );
    let mut q = sqlx::query(&sql).bind(now as i64);
    if let Some((o, p)) = plan {
        q = q.bind(o.to_string()).bind(p.to_string());
    }
    let due: Vec<Reservation> = q
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(reservation)
        .collect();
    let mut events = Vec::new();
    for r in due {
        let done = sqlx::query(
            "UPDATE reservations SET status = 'expired' WHERE id = $1 AND status = 'held'",
        )
        .bind(r.id.clone())
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 1 {
            release_capacity(tx, &r.offer_id, &r.plan_id, r.quantity).await?;
            events.push(reservation_event(&r, Topic::ReservationExpired));
        }
    }
    Ok(events)
}

/// Expires every reservation past its time; returns how many.
pub async fn expire_due(store: &Store, now: u64) -> Result<usize, MarketError> {
    let mut tx = store.begin().await?;
    let events = expire_in(&mut tx, None, now).await?;
    let n = events.len();
    flush(&mut tx, store, events, now).await?;
    tx.commit().await?;
    Ok(n)
}

/// Holds `r.quantity` units of the plan until `r.expires_at`, or refuses when fewer are free.
/// One conditional UPDATE decides, so concurrent reservations (threads, processes, brokers on one
/// PostgreSQL) never hold more than the capacity.
pub async fn reserve(
    store: &Store,
    r: &Reservation,
    capacity: u32,
    now: u64,
) -> Result<(), MarketError> {
    let mut tx = store.begin().await?;
    let mut events = expire_in(&mut tx, Some((&r.offer_id, &r.plan_id)), now).await?;
    sqlx::query(
        "INSERT INTO plan_capacity (offer_id, plan_id, capacity, held) VALUES ($1, $2, $3, 0) \
         ON CONFLICT (offer_id, plan_id) DO UPDATE SET capacity = excluded.capacity",
    )
    .bind(r.offer_id.clone())
    .bind(r.plan_id.clone())
    .bind(i64::from(capacity))
    .execute(&mut *tx)
    .await?;
    let held = sqlx::query(
        "UPDATE plan_capacity SET held = held + $1 \
         WHERE offer_id = $2 AND plan_id = $3 AND held + $1 <= capacity",
    )
    .bind(i64::from(r.quantity))
    .bind(r.offer_id.clone())
    .bind(r.plan_id.clone())
    .execute(&mut *tx)
    .await?;
    if held.rows_affected() != 1 {
        let (cap, held): (i64, i64) = sqlx::query_as(
            "SELECT capacity, held FROM plan_capacity WHERE offer_id = $1 AND plan_id = $2",
        )
        .bind(r.offer_id.clone())
        .bind(r.plan_id.clone())
        .fetch_one(&mut *tx)
        .await?;
        // Expiries found on the way are still worth keeping.
        flush(&mut tx, store, events, now).await?;
        tx.commit().await?;
        return Err(MarketError::SoldOut {
            available: (cap - held).max(0) as u64,
        });
    }
    sqlx::query(&format!(
        "INSERT INTO reservations ({RESERVATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 'held', $7, $8, $9, $10, $11)"
    ))
    .bind(r.id.clone())
    .bind(r.consumer.clone())
    .bind(r.provider.clone())
    .bind(r.offer_id.clone())
    .bind(r.plan_id.clone())
    .bind(i64::from(r.quantity))
    .bind(r.expires_at as i64)
    .bind(r.created_at as i64)
    .bind(r.document.clone())
    .bind(r.document_cid.clone())
    .bind(r.terms.to_string())
    .execute(&mut *tx)
    .await?;
    events.push(reservation_event(r, Topic::ReservationCreated));
    flush(&mut tx, store, events, now).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn get_reservation(store: &Store, id: &str) -> Result<Option<Reservation>, MarketError> {
    Ok(sqlx::query(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(reservation))
}

/// Units of a plan held now (reservations and live contracts).
pub async fn held(store: &Store, offer_id: &str, plan_id: &str) -> Result<u64, MarketError> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT held FROM plan_capacity WHERE offer_id = $1 AND plan_id = $2")
            .bind(offer_id.to_string())
            .bind(plan_id.to_string())
            .fetch_optional(store.pool())
            .await?;
    Ok(row.map_or(0, |(h,)| h as u64))
}

/// The purchase state machine's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Signed by the consumer; waiting for the provider's signature.
    Proposed,
    /// Signed by both; to be opened on chain.
    Accepted,
    /// The open transaction may have been sent; the chain decides.
    Opening,
    Active,
    /// Being closed on chain.
    Closing,
    Closed,
    /// Never opened: the reservation's units are released, no funds moved.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Accepted => "accepted",
            Self::Opening => "opening",
            Self::Active => "active",
            Self::Closing => "closing",
            Self::Closed => "closed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Proposed,
            Self::Accepted,
            Self::Opening,
            Self::Active,
            Self::Closing,
            Self::Closed,
            Self::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Closed | Self::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContractRecord {
    pub id: String,
    pub reservation_id: String,
    pub consumer: String,
    pub provider: String,
    pub offer_id: String,
    pub plan_id: String,
    pub quantity: u32,
    #[serde(skip)]
    pub idempotency_key: String,
    #[serde(skip)]
    pub request_hash: String,
    pub state: State,
    pub document_cid: String,
    pub signatures_cid: Option<String>,
    pub consumer_signature: String,
    pub provider_signature: Option<String>,
    #[serde(skip)]
    pub authorization: String,
    pub deadline: u64,
    pub tx_hash: Option<String>,
    pub refund: Option<String>,
    pub failure: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

const CONTRACT_COLUMNS: &str = "id, reservation_id, consumer, provider, offer_id, plan_id, quantity, idempotency_key, request_hash, state, document_cid, signatures_cid, consumer_signature, provider_signature, open_authorization, deadline, tx_hash, refund, failure, created_at, updated_at";

fn contract(r: &AnyRow) -> ContractRecord {
    ContractRecord {
        id: r.get(0),
        reservation_id: r.get(1),
        consumer: r.get(2),
        provider: r.get(3),
        offer_id: r.get(4),
        plan_id: r.get(5),
        quantity: r.get::<i64, _>(6) as u32,
        idempotency_key: r.get(7),
        request_hash: r.get(8),
        state: State::parse(&r.get::<String, _>(9)).unwrap_or(State::Failed),
        document_cid: r.get(10),
        signatures_cid: r.get(11),
        consumer_signature: r.get(12),
        provider_signature: r.get(13),
        authorization: r.get(14),
        deadline: r.get::<i64, _>(15) as u64,
        tx_hash: r.get(16),
        refund: r.get(17),
        failure: r.get(18),
        created_at: r.get::<i64, _>(19) as u64,
        updated_at: r.get::<i64, _>(20) as u64,
    }
}

pub fn contract_event(c: &ContractRecord, topic: Topic) -> Pending {
    Pending {
        topic,
        subject: c.id.clone(),
        audience: Audience::parties(&[&c.consumer, &c.provider]),
        payload: serde_json::json!({
            "contract": c.id, "state": c.state, "offerId": c.offer_id, "planId": c.plan_id,
            "quantity": c.quantity, "consumer": c.consumer, "provider": c.provider,
            "documentCid": c.document_cid, "txHash": c.tx_hash, "failure": c.failure,
        }),
    }
}

pub async fn get_contract(store: &Store, id: &str) -> Result<Option<ContractRecord>, MarketError> {
    Ok(sqlx::query(&format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(contract))
}

pub async fn find_by_key(
    store: &Store,
    consumer: &str,
    key: &str,
) -> Result<Option<ContractRecord>, MarketError> {
    Ok(sqlx::query(&format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE consumer = $1 AND idempotency_key = $2"
    ))
    .bind(consumer.to_string())
    .bind(key.to_string())
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(contract))
}

/// Contracts a participant is party to (or all of them, for `None`), newest first.
pub async fn list_contracts(
    store: &Store,
    party: Option<&str>,
    limit: u32,
) -> Result<Vec<ContractRecord>, MarketError> {
    let rows = match party {
        Some(did) => sqlx::query(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE consumer = $1 OR provider = $1 ORDER BY created_at DESC, id LIMIT $2"
        ))
        .bind(did.to_string())
        .bind(i64::from(limit))
        .fetch_all(store.pool())
        .await?,
        None => sqlx::query(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts ORDER BY created_at DESC, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(store.pool())
        .await?,
    };
    Ok(rows.iter().map(contract).collect())
}

/// Contracts the purchase driver has work on.
pub async fn unfinished(store: &Store) -> Result<Vec<ContractRecord>, MarketError> {
    let rows = sqlx::query(&format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE state IN ('proposed', 'accepted', 'opening', 'closing') ORDER BY created_at"
    ))
    .fetch_all(store.pool())
    .await?;
    Ok(rows.iter().map(contract).collect())
}

/// Turns a held reservation into a proposed contract (consumer signed), atomically: the
/// reservation must still be held, unexpired and the consumer's.
pub async fn propose(store: &Store, c: &ContractRecord, now: u64) -> Result<(), MarketError> {
    let mut tx = store.begin().await?;
    let taken = sqlx::query(
        "UPDATE reservations SET status = 'purchasing' \
         WHERE id = $1 AND consumer = $2 AND status = 'held' AND expires_at >= $3",
    )
    .bind(c.reservation_id.clone())
    .bind(c.consumer.clone())
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    if taken.rows_affected() != 1 {
        return Err(MarketError::ReservationGone(c.reservation_id.clone()));
    }
    sqlx::query(&format!(
        "INSERT INTO contracts ({CONTRACT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12, NULL, $13, $14, NULL, NULL, NULL, $15, $15)"
    ))
    .bind(c.id.clone())
    .bind(c.reservation_id.clone())
    .bind(c.consumer.clone())
    .bind(c.provider.clone())
    .bind(c.offer_id.clone())
    .bind(c.plan_id.clone())
    .bind(i64::from(c.quantity))
    .bind(c.idempotency_key.clone())
    .bind(c.request_hash.clone())
    .bind(State::Proposed.as_str())
    .bind(c.document_cid.clone())
    .bind(c.consumer_signature.clone())
    .bind(c.authorization.clone())
    .bind(c.deadline as i64)
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    flush(
        &mut tx,
        store,
        vec![contract_event(c, Topic::ContractProposed)],
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What a transition sets besides the state.
#[derive(Default)]
pub struct Change<'a> {
    pub provider_signature: Option<&'a str>,
    pub signatures_cid: Option<&'a str>,
    pub tx_hash: Option<&'a str>,
    pub refund: Option<&'a str>,
    pub failure: Option<&'a str>,
}

/// Moves a contract from `from` to `to` if it is still in `from` (so two drivers never both
/// apply a step); keeps the reservation and the plan's held units in step; emits `topic`.
/// Returns false when the contract had already moved on.
pub async fn transition(
    store: &Store,
    id: &str,
    from: State,
    to: State,
    change: Change<'_>,
    topic: Option<Topic>,
    now: u64,
) -> Result<bool, MarketError> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE contracts SET state = $1, updated_at = $2, \
         provider_signature = COALESCE($3, provider_signature), \
         signatures_cid = COALESCE($4, signatures_cid), tx_hash = COALESCE($5, tx_hash), \
         refund = COALESCE($6, refund), failure = COALESCE($7, failure) \
         WHERE id = $8 AND state = $9",
    )
    .bind(to.as_str())
    .bind(now as i64)
    .bind(change.provider_signature.map(str::to_string))
    .bind(change.signatures_cid.map(str::to_string))
    .bind(change.tx_hash.map(str::to_string))
    .bind(change.refund.map(str::to_string))
    .bind(change.failure.map(str::to_string))
    .bind(id.to_string())
    .bind(from.as_str())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let row = sqlx::query(&format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await?;
    let c = contract(&row);
    let reservation_status = match to {
        State::Active => Some("purchased"),
        State::Failed => Some("released"),
        _ => None,
    };
    if let Some(status) = reservation_status {
        sqlx::query("UPDATE reservations SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(c.reservation_id.clone())
            .execute(&mut *tx)
            .await?;
    }
    // Units stay held from the reservation to the contract's end.
    if matches!(to, State::Failed | State::Closed) {
        release_capacity(&mut tx, &c.offer_id, &c.plan_id, c.quantity).await?;
    }
    let mut events: Vec<Pending> = topic.map(|t| contract_event(&c, t)).into_iter().collect();
    // A contract that ends takes its peering credentials with it, in the same transaction.
    if matches!(to, State::Closing | State::Closed | State::Failed) {
        let why = format!("contract {}", to.as_str());
        events.extend(super::credentials::revoke_in(&mut tx, &c, &why, now).await?);
    }
    flush(&mut tx, store, events, now).await?;
    tx.commit().await?;
    Ok(true)
}
