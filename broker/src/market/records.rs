//! Reservations, plan capacity and contracts in the database. Every change and the event that
//! reports it commit together; every contract move is checked against the state machine's table
//! (`api::contracts::TRANSITIONS`) before it is written.

use alloy::primitives::Signature;
use api::contracts::{Contract, ContractState};
use api::events::{ContractChanged, EventBody, ReservationChanged};
use api::reservations::{PurchaseTerms, Reservation, ReservationState};
use api::{
    ContentId, ContractId, Credits, Did, Ed25519Signature, EvmSignature, OfferId, PlanId,
    ReservationId, TxHash,
};
use serde::{Deserialize, Serialize};

use super::{Market, MarketError};
use crate::events::outbox::{Audience, Pending};
use crate::ledger_link::OpenAuthorization;
use crate::store::{Corrupt, Decode, Store};

/// A reservation as the broker keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRecord {
    pub id: ReservationId,
    pub consumer: Did,
    pub provider: Did,
    pub offer_id: OfferId,
    pub plan_id: PlanId,
    pub quantity: u32,
    pub status: ReservationState,
    pub expires_at: u64,
    pub created_at: u64,
    /// The contract document's exact bytes (UTF-8 JSON).
    pub document: String,
    pub document_cid: ContentId,
    pub terms: PurchaseTerms,
}

impl ReservationRecord {
    pub fn view(&self) -> Reservation {
        Reservation {
            id: self.id,
            status: self.status,
            offer_id: self.offer_id.clone(),
            plan_id: self.plan_id.clone(),
            quantity: self.quantity,
            expires_at: self.expires_at,
            document: self.document.clone(),
            document_cid: self.document_cid.clone(),
            terms: self.terms.clone(),
        }
    }

    pub fn may_see(&self, who: &api::Principal) -> bool {
        who.role.oversees() || who.did == self.consumer || who.did == self.provider
    }
}

#[derive(sqlx::FromRow)]
struct ReservationRow {
    id: String,
    consumer: String,
    provider: String,
    offer_id: String,
    plan_id: String,
    quantity: i64,
    status: String,
    expires_at: i64,
    created_at: i64,
    document: String,
    document_cid: String,
    terms: String,
}

impl ReservationRow {
    fn decode(self) -> Result<ReservationRecord, Corrupt> {
        let d = Decode {
            table: "reservations",
            key: &self.id,
        };
        Ok(ReservationRecord {
            id: d.parse("id", &self.id)?,
            consumer: d.parse("consumer", &self.consumer)?,
            provider: d.parse("provider", &self.provider)?,
            offer_id: d.parse("offer_id", &self.offer_id)?,
            plan_id: d.parse("plan_id", &self.plan_id)?,
            quantity: d.u32("quantity", self.quantity)?,
            status: d.named("status", &self.status, ReservationState::parse)?,
            expires_at: d.u64("expires_at", self.expires_at)?,
            created_at: d.u64("created_at", self.created_at)?,
            document_cid: d.parse("document_cid", &self.document_cid)?,
            terms: d.json("terms", &self.terms)?,
            document: self.document,
        })
    }
}

const RESERVATION_COLUMNS: &str = "id, consumer, provider, offer_id, plan_id, quantity, status, expires_at, created_at, document, document_cid, terms";

fn reservation_event(r: &ReservationRecord, expired: bool) -> Pending {
    let changed = ReservationChanged {
        reservation: r.id,
        offer_id: r.offer_id.clone(),
        plan_id: r.plan_id.clone(),
        quantity: r.quantity,
        expires_at: r.expires_at,
    };
    Pending {
        subject: r.id.to_string(),
        audience: Audience::parties(&[&r.consumer, &r.provider]),
        body: if expired {
            EventBody::ReservationExpired(changed)
        } else {
            EventBody::ReservationCreated(changed)
        },
    }
}

async fn release_capacity(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    offer_id: &OfferId,
    plan_id: &PlanId,
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
    plan: Option<(&OfferId, &PlanId)>,
    now: u64,
) -> Result<Vec<Pending>, MarketError> {
    let sql = format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE status = 'held' AND expires_at < $1{}",
        if plan.is_some() { " AND offer_id = $2 AND plan_id = $3" } else { " LIMIT 200" }
    );
    let mut q = sqlx::query_as::<_, ReservationRow>(&sql).bind(now as i64);
    if let Some((o, p)) = plan {
        q = q.bind(o.to_string()).bind(p.to_string());
    }
    let rows = q.fetch_all(&mut **tx).await?;
    let mut events = Vec::new();
    for row in rows {
        let r = row.decode()?;
        let done = sqlx::query(
            "UPDATE reservations SET status = 'expired' WHERE id = $1 AND status = 'held'",
        )
        .bind(r.id.to_string())
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 1 {
            release_capacity(tx, &r.offer_id, &r.plan_id, r.quantity).await?;
            events.push(reservation_event(&r, true));
        }
    }
    Ok(events)
}

/// Expires every reservation past its time; returns how many.
pub async fn expire_due(market: &Market, now: u64) -> Result<usize, MarketError> {
    let mut tx = market.store.begin().await?;
    let events = expire_in(&mut tx, None, now).await?;
    let n = events.len();
    market.commit(tx, events, now).await?;
    Ok(n)
}

/// When the next held reservation expires, if any is held.
pub async fn next_expiry(store: &Store) -> Result<Option<u64>, MarketError> {
    let at: Option<i64> =
        sqlx::query_scalar("SELECT MIN(expires_at) FROM reservations WHERE status = 'held'")
            .fetch_one(store.pool())
            .await?;
    Ok(Decode {
        table: "reservations",
        key: "next expiry",
    }
    .opt_u64("expires_at", at)?)
}

/// Holds `r.quantity` units of the plan until `r.expires_at`, or refuses when fewer are free.
/// One conditional UPDATE decides, so concurrent reservations (threads, processes, brokers on one
/// PostgreSQL) never hold more than the capacity.
pub async fn reserve(
    market: &Market,
    r: &ReservationRecord,
    capacity: u32,
    now: u64,
) -> Result<(), MarketError> {
    let mut tx = market.store.begin().await?;
    let mut events = expire_in(&mut tx, Some((&r.offer_id, &r.plan_id)), now).await?;
    sqlx::query(
        "INSERT INTO plan_capacity (offer_id, plan_id, capacity, held) VALUES ($1, $2, $3, 0) \
         ON CONFLICT (offer_id, plan_id) DO UPDATE SET capacity = excluded.capacity",
    )
    .bind(r.offer_id.to_string())
    .bind(r.plan_id.to_string())
    .bind(i64::from(capacity))
    .execute(&mut *tx)
    .await?;
    let held = sqlx::query(
        "UPDATE plan_capacity SET held = held + $1 \
         WHERE offer_id = $2 AND plan_id = $3 AND held + $1 <= capacity",
    )
    .bind(i64::from(r.quantity))
    .bind(r.offer_id.to_string())
    .bind(r.plan_id.to_string())
    .execute(&mut *tx)
    .await?;
    if held.rows_affected() != 1 {
        let (cap, held): (i64, i64) = sqlx::query_as(
            "SELECT capacity, held FROM plan_capacity WHERE offer_id = $1 AND plan_id = $2",
        )
        .bind(r.offer_id.to_string())
        .bind(r.plan_id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        // Expiries found on the way are still worth keeping.
        market.commit(tx, events, now).await?;
        return Err(MarketError::SoldOut {
            available: (cap - held).max(0) as u64,
        });
    }
    sqlx::query(&format!(
        "INSERT INTO reservations ({RESERVATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 'held', $7, $8, $9, $10, $11)"
    ))
    .bind(r.id.to_string())
    .bind(r.consumer.to_string())
    .bind(r.provider.to_string())
    .bind(r.offer_id.to_string())
    .bind(r.plan_id.to_string())
    .bind(i64::from(r.quantity))
    .bind(r.expires_at as i64)
    .bind(r.created_at as i64)
    .bind(r.document.clone())
    .bind(r.document_cid.to_string())
    .bind(serde_json::to_string(&r.terms).expect("terms serialise"))
    .execute(&mut *tx)
    .await?;
    events.push(reservation_event(r, false));
    market.commit(tx, events, now).await?;
    market.signals.driver.notify_one();
    Ok(())
}

pub async fn get_reservation(
    store: &Store,
    id: ReservationId,
) -> Result<Option<ReservationRecord>, MarketError> {
    let row: Option<ReservationRow> = sqlx::query_as(&format!(
        "SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(ReservationRow::decode).transpose()?)
}

/// The consumer's authorisation as stored with the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoredAuthorization {
    pub terms: PurchaseTerms,
    pub open_signature: EvmSignature,
    pub permit_signature: EvmSignature,
}

impl StoredAuthorization {
    /// What the broker relays to open the contract.
    pub fn open_authorization(&self) -> OpenAuthorization {
        let t = self.terms.chain();
        let permit: Signature = self.permit_signature.signature();
        OpenAuthorization {
            request: t.open_request(),
            open_signature: self.open_signature.bytes().clone(),
            permit_deadline: t.deadline,
            permit_signature: permit,
        }
    }
}

/// A contract as the broker keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractRecord {
    pub id: ContractId,
    pub reservation_id: ReservationId,
    pub consumer: Did,
    pub provider: Did,
    pub offer_id: OfferId,
    pub plan_id: PlanId,
    pub quantity: u32,
    pub idempotency_key: String,
    pub request_hash: String,
    pub state: ContractState,
    pub document_cid: ContentId,
    pub signatures_cid: Option<ContentId>,
    pub consumer_signature: Ed25519Signature,
    pub provider_signature: Option<Ed25519Signature>,
    pub authorization: StoredAuthorization,
    pub deadline: u64,
    pub tx_hash: Option<TxHash>,
    pub refund: Option<Credits>,
    pub failure: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
}

impl ContractRecord {
    /// The contract as the API shows it (without its document and chain state).
    pub fn view(&self) -> Contract {
        Contract {
            id: self.id,
            reservation_id: self.reservation_id,
            consumer: self.consumer.clone(),
            provider: self.provider.clone(),
            offer_id: self.offer_id.clone(),
            plan_id: self.plan_id.clone(),
            quantity: self.quantity,
            state: self.state,
            document_cid: self.document_cid.clone(),
            signatures_cid: self.signatures_cid.clone(),
            consumer_signature: self.consumer_signature.clone(),
            provider_signature: self.provider_signature.clone(),
            deadline: self.deadline,
            tx_hash: self.tx_hash,
            refund: self.refund,
            failure: self.failure.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            document: None,
            chain: None,
        }
    }

    pub fn is_party(&self, did: &Did) -> bool {
        *did == self.consumer || *did == self.provider
    }

    pub fn event(&self, body: fn(ContractChanged) -> EventBody) -> Pending {
        Pending {
            subject: self.id.to_string(),
            audience: Audience::parties(&[&self.consumer, &self.provider]),
            body: body(ContractChanged {
                contract: self.id,
                state: self.state,
                offer_id: self.offer_id.clone(),
                plan_id: self.plan_id.clone(),
                quantity: self.quantity,
                consumer: self.consumer.clone(),
                provider: self.provider.clone(),
                document_cid: self.document_cid.clone(),
                tx_hash: self.tx_hash,
                failure: self.failure.clone(),
            }),
        }
    }

    /// An event about the contract for its two parties.
    pub fn parties_event(&self, body: EventBody) -> Pending {
        Pending {
            subject: self.id.to_string(),
            audience: Audience::parties(&[&self.consumer, &self.provider]),
            body,
        }
    }
}

#[derive(sqlx::FromRow)]
struct ContractRow {
    id: String,
    reservation_id: String,
    consumer: String,
    provider: String,
    offer_id: String,
    plan_id: String,
    quantity: i64,
    idempotency_key: String,
    request_hash: String,
    state: String,
    document_cid: String,
    signatures_cid: Option<String>,
    consumer_signature: String,
    provider_signature: Option<String>,
    open_authorization: String,
    deadline: i64,
    tx_hash: Option<String>,
    refund: Option<String>,
    failure: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl ContractRow {
    fn decode(self) -> Result<ContractRecord, Corrupt> {
        let d = Decode {
            table: "contracts",
            key: &self.id,
        };
        Ok(ContractRecord {
            id: d.parse("id", &self.id)?,
            reservation_id: d.parse("reservation_id", &self.reservation_id)?,
            consumer: d.parse("consumer", &self.consumer)?,
            provider: d.parse("provider", &self.provider)?,
            offer_id: d.parse("offer_id", &self.offer_id)?,
            plan_id: d.parse("plan_id", &self.plan_id)?,
            quantity: d.u32("quantity", self.quantity)?,
            state: d.named("state", &self.state, ContractState::parse)?,
            document_cid: d.parse("document_cid", &self.document_cid)?,
            signatures_cid: d.opt_parse("signatures_cid", self.signatures_cid.as_deref())?,
            consumer_signature: d.parse("consumer_signature", &self.consumer_signature)?,
            provider_signature: d
                .opt_parse("provider_signature", self.provider_signature.as_deref())?,
            authorization: d.json("open_authorization", &self.open_authorization)?,
            deadline: d.u64("deadline", self.deadline)?,
            tx_hash: d.opt_parse("tx_hash", self.tx_hash.as_deref())?,
            refund: d.opt_parse("refund", self.refund.as_deref())?,
            created_at: d.u64("created_at", self.created_at)?,
            updated_at: d.u64("updated_at", self.updated_at)?,
            idempotency_key: self.idempotency_key,
            request_hash: self.request_hash,
            failure: self.failure,
        })
    }
}

const CONTRACT_COLUMNS: &str = "id, reservation_id, consumer, provider, offer_id, plan_id, quantity, idempotency_key, request_hash, state, document_cid, signatures_cid, consumer_signature, provider_signature, open_authorization, deadline, tx_hash, refund, failure, created_at, updated_at";

fn decode_contracts(rows: Vec<ContractRow>) -> Result<Vec<ContractRecord>, MarketError> {
    Ok(rows
        .into_iter()
        .map(ContractRow::decode)
        .collect::<Result<_, _>>()?)
}

pub async fn get_contract(
    store: &Store,
    id: ContractId,
) -> Result<Option<ContractRecord>, MarketError> {
    let row: Option<ContractRow> = sqlx::query_as(&format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(ContractRow::decode).transpose()?)
}

pub async fn find_by_key(
    store: &Store,
    consumer: &Did,
    key: &str,
) -> Result<Option<ContractRecord>, MarketError> {
    let row: Option<ContractRow> = sqlx::query_as(&format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE consumer = $1 AND idempotency_key = $2"
    ))
    .bind(consumer.to_string())
    .bind(key.to_string())
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(ContractRow::decode).transpose()?)
}

/// Contracts a participant is party to (or all of them, for `None`), newest first.
pub async fn list_contracts(
    store: &Store,
    party: Option<&Did>,
    limit: u32,
) -> Result<Vec<ContractRecord>, MarketError> {
    let rows: Vec<ContractRow> = match party {
        Some(did) => sqlx::query_as(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE consumer = $1 OR provider = $1 ORDER BY created_at DESC, id LIMIT $2"
        ))
        .bind(did.to_string())
        .bind(i64::from(limit))
        .fetch_all(store.pool())
        .await?,
        None => sqlx::query_as(&format!(
            "SELECT {CONTRACT_COLUMNS} FROM contracts ORDER BY created_at DESC, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(store.pool())
        .await?,
    };
    decode_contracts(rows)
}

/// Contracts in `states`, oldest first.
pub async fn in_states(
    store: &Store,
    states: &[ContractState],
) -> Result<Vec<ContractRecord>, MarketError> {
    let list = states
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<ContractRow> = sqlx::query_as(&format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE state IN ({list}) ORDER BY created_at, id"
    ))
    .fetch_all(store.pool())
    .await?;
    decode_contracts(rows)
}

/// The earliest deadline of a contract still waiting to be signed or opened.
pub async fn next_deadline(store: &Store) -> Result<Option<u64>, MarketError> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(deadline) FROM contracts WHERE state IN ('proposed', 'opening')",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(Decode {
        table: "contracts",
        key: "next deadline",
    }
    .opt_u64("deadline", at)?)
}

/// Turns a held reservation into a proposed contract (consumer signed), atomically: the
/// reservation must still be held, unexpired and the consumer's.
pub async fn propose(market: &Market, c: &ContractRecord, now: u64) -> Result<(), MarketError> {
    let mut tx = market.store.begin().await?;
    let taken = sqlx::query(
        "UPDATE reservations SET status = 'purchasing' \
         WHERE id = $1 AND consumer = $2 AND status = 'held' AND expires_at >= $3",
    )
    .bind(c.reservation_id.to_string())
    .bind(c.consumer.to_string())
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    if taken.rows_affected() != 1 {
        return Err(MarketError::ReservationGone(c.reservation_id));
    }
    sqlx::query(&format!(
        "INSERT INTO contracts ({CONTRACT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12, NULL, $13, $14, NULL, NULL, NULL, $15, $15)"
    ))
    .bind(c.id.to_string())
    .bind(c.reservation_id.to_string())
    .bind(c.consumer.to_string())
    .bind(c.provider.to_string())
    .bind(c.offer_id.to_string())
    .bind(c.plan_id.to_string())
    .bind(i64::from(c.quantity))
    .bind(c.idempotency_key.clone())
    .bind(c.request_hash.clone())
    .bind(ContractState::Proposed.as_str())
    .bind(c.document_cid.to_string())
    .bind(c.consumer_signature.to_string())
    .bind(serde_json::to_string(&c.authorization).expect("authorisations serialise"))
    .bind(c.deadline as i64)
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    market
        .commit(tx, vec![c.event(EventBody::ContractProposed)], now)
        .await?;
    market.signals.driver.notify_one();
    Ok(())
}

/// What a transition sets besides the state.
#[derive(Default)]
pub struct Change<'a> {
    pub provider_signature: Option<&'a Ed25519Signature>,
    pub signatures_cid: Option<&'a ContentId>,
    pub tx_hash: Option<TxHash>,
    pub refund: Option<Credits>,
    pub failure: Option<&'a str>,
}

/// The event a move into `to` announces.
fn event_for(to: ContractState) -> Option<fn(ContractChanged) -> EventBody> {
    Some(match to {
        ContractState::Accepted => EventBody::ContractAccepted,
        ContractState::Active => EventBody::ContractActivated,
        ContractState::Failed => EventBody::ContractFailed,
        ContractState::Closing => EventBody::ContractClosing,
        ContractState::Closed => EventBody::ContractClosed,
        ContractState::Proposed | ContractState::Opening => return None,
    })
}

/// Moves a contract from `from` to `to` if it is still in `from` (so two drivers never both
/// apply a step) and the state machine allows the move; keeps the reservation and the plan's
/// held units in step; announces the move. Returns false when the contract had already moved on.
pub async fn transition(
    market: &Market,
    id: ContractId,
    from: ContractState,
    to: ContractState,
    change: Change<'_>,
    now: u64,
) -> Result<bool, MarketError> {
    if !from.can_move_to(to) {
        return Err(MarketError::IllegalMove { id, from, to });
    }
    let mut tx = market.store.begin().await?;
    let done = sqlx::query(
        "UPDATE contracts SET state = $1, updated_at = $2, \
         provider_signature = COALESCE($3, provider_signature), \
         signatures_cid = COALESCE($4, signatures_cid), tx_hash = COALESCE($5, tx_hash), \
         refund = COALESCE($6, refund), failure = COALESCE($7, failure) \
         WHERE id = $8 AND state = $9",
    )
    .bind(to.as_str())
    .bind(now as i64)
    .bind(change.provider_signature.map(|s| s.to_string()))
    .bind(change.signatures_cid.map(|c| c.to_string()))
    .bind(change.tx_hash.map(|h| h.to_string()))
    .bind(change.refund.map(|r| r.to_string()))
    .bind(change.failure.map(str::to_string))
    .bind(id.to_string())
    .bind(from.as_str())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    let row: ContractRow = sqlx::query_as(&format!(
        "SELECT {CONTRACT_COLUMNS} FROM contracts WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await?;
    let c = row.decode()?;
    let reservation_status = match to {
        ContractState::Active => Some(ReservationState::Purchased),
        ContractState::Failed => Some(ReservationState::Released),
        _ => None,
    };
    if let Some(status) = reservation_status {
        sqlx::query("UPDATE reservations SET status = $1 WHERE id = $2")
            .bind(status.as_str())
            .bind(c.reservation_id.to_string())
            .execute(&mut *tx)
            .await?;
    }
    // Units stay held from the reservation to the contract's end.
    if matches!(to, ContractState::Failed | ContractState::Closed) {
        release_capacity(&mut tx, &c.offer_id, &c.plan_id, c.quantity).await?;
    }
    let mut events: Vec<Pending> = event_for(to).map(|e| c.event(e)).into_iter().collect();
    // A contract that ends takes its peering credentials with it, in the same transaction.
    if matches!(
        to,
        ContractState::Closing | ContractState::Closed | ContractState::Failed
    ) {
        let why = format!("contract {to}");
        events.extend(super::credentials::revoke_in(&mut tx, &c, &why, now).await?);
    }
    market.commit(tx, events, now).await?;
    Ok(true)
}

/// Commits `events` alone (changes made outside a contract move).
pub async fn announce(market: &Market, events: Vec<Pending>, now: u64) -> Result<(), MarketError> {
    let tx = market.store.begin().await?;
    market.commit(tx, events, now).await
}
