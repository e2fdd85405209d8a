//! Events: what happened, as the outbox records it and the event stream (server-sent events) and
//! RabbitMQ carry it. Each topic has its own payload type.

use std::fmt;

use alloy::primitives::Address;
use catalog::Credits;
use identity::Did;
use serde::{Deserialize, Serialize};

use crate::contracts::ContractState;
use crate::ids::{
    BatchId, ContentId, ContractId, CredentialHash, OfferId, PlanId, ReservationId, TxHash,
};

/// What happened; the routing key on the bus and the SSE event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Topic {
    #[serde(rename = "offer.published")]
    OfferPublished,
    #[serde(rename = "offer.updated")]
    OfferUpdated,
    #[serde(rename = "offer.withdrawn")]
    OfferWithdrawn,
    #[serde(rename = "reservation.created")]
    ReservationCreated,
    #[serde(rename = "reservation.expired")]
    ReservationExpired,
    #[serde(rename = "contract.proposed")]
    ContractProposed,
    #[serde(rename = "contract.accepted")]
    ContractAccepted,
    #[serde(rename = "contract.activated")]
    ContractActivated,
    #[serde(rename = "contract.failed")]
    ContractFailed,
    #[serde(rename = "contract.closing")]
    ContractClosing,
    #[serde(rename = "contract.closed")]
    ContractClosed,
    #[serde(rename = "provider.config_changed")]
    ProviderConfigChanged,
    #[serde(rename = "participant.account_linked")]
    AccountLinked,
    #[serde(rename = "credential.issued")]
    CredentialIssued,
    #[serde(rename = "credential.rotated")]
    CredentialRotated,
    #[serde(rename = "credential.revoked")]
    CredentialRevoked,
    #[serde(rename = "usage.settled")]
    UsageSettled,
    #[serde(rename = "contract.escrow_low")]
    EscrowLow,
    #[serde(rename = "contract.suspended")]
    ContractSuspended,
    #[serde(rename = "contract.resumed")]
    ContractResumed,
    /// A certified-metric credential (W3C VC) issued and anchored; `credential.*` are the
    /// peering credentials.
    #[serde(rename = "certificate.issued")]
    CertificateIssued,
    #[serde(rename = "certificate.revoked")]
    CertificateRevoked,
}

impl Topic {
    pub const ALL: [Topic; 22] = [
        Self::OfferPublished,
        Self::OfferUpdated,
        Self::OfferWithdrawn,
        Self::ReservationCreated,
        Self::ReservationExpired,
        Self::ContractProposed,
        Self::ContractAccepted,
        Self::ContractActivated,
        Self::ContractFailed,
        Self::ContractClosing,
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
        Self::CertificateIssued,
        Self::CertificateRevoked,
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
            Self::ContractClosing => "contract.closing",
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
            Self::CertificateIssued => "certificate.issued",
            Self::CertificateRevoked => "certificate.revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An offer published or updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferChanged {
    pub offer: OfferId,
    pub version: u32,
    pub provider: Did,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferWithdrawn {
    pub offer: OfferId,
    pub provider: Did,
}

/// A reservation created or expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationChanged {
    pub reservation: ReservationId,
    pub offer_id: OfferId,
    pub plan_id: PlanId,
    pub quantity: u32,
    pub expires_at: u64,
}

/// A contract moved to another state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContractChanged {
    pub contract: ContractId,
    pub state: ContractState,
    pub offer_id: OfferId,
    pub plan_id: PlanId,
    pub quantity: u32,
    pub consumer: Did,
    pub provider: Did,
    pub document_cid: ContentId,
    pub tx_hash: Option<TxHash>,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChanged {
    pub provider: Did,
    pub version: u64,
    pub cid: ContentId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountLinked {
    pub did: Did,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub account: Address,
    pub tx_hash: Option<TxHash>,
}

/// A credential the provider's agent is to admit, signed by the broker that issued it (the agent
/// admits only its pinned broker's, and keeps evidence of what it was told).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialIssued {
    pub contract: ContractId,
    pub hash: CredentialHash,
    pub version: u64,
    pub consumer: Did,
    pub not_before: u64,
    pub expires_at: u64,
    /// The broker's signature over `admission_text()` (`Domain::Admission`).
    pub broker_signature: crate::ids::Ed25519Signature,
}

impl CredentialIssued {
    /// What the broker signs: every field the agent admits by.
    pub fn admission_text(
        contract: ContractId,
        hash: &CredentialHash,
        consumer: &Did,
        not_before: u64,
        expires_at: u64,
    ) -> String {
        format!("contract: {contract}\ncredential: {hash}\nconsumer: {consumer}\nnot-before: {not_before}\nexpires: {expires_at}")
    }

    /// Checks the admission is signed by `broker`.
    pub fn verify(&self, broker: &Did) -> bool {
        let text = Self::admission_text(
            self.contract,
            &self.hash,
            &self.consumer,
            self.not_before,
            self.expires_at,
        );
        self.broker_signature
            .verify(broker, identity::Domain::Admission, text.as_bytes())
            .is_ok()
    }
}

/// Older credentials replaced by a renewal work until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRotated {
    pub contract: ContractId,
    pub replaced: Vec<CredentialHash>,
    pub until: u64,
    pub by: CredentialHash,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRevoked {
    pub contract: ContractId,
    pub revoked: Vec<CredentialHash>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSettled {
    pub contract: ContractId,
    pub batch: BatchId,
    pub amount: Credits,
    pub tx_hash: Option<TxHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EscrowLow {
    pub contract: ContractId,
    pub seconds_left: Option<u64>,
    pub available: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContractSuspended {
    pub contract: ContractId,
    pub escrow: Credits,
    pub pending: Credits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContractResumed {
    pub contract: ContractId,
    pub escrow: Credits,
}

/// An event's topic with its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "topic", content = "payload")]
pub enum EventBody {
    #[serde(rename = "offer.published")]
    OfferPublished(OfferChanged),
    #[serde(rename = "offer.updated")]
    OfferUpdated(OfferChanged),
    #[serde(rename = "offer.withdrawn")]
    OfferWithdrawn(OfferWithdrawn),
    #[serde(rename = "reservation.created")]
    ReservationCreated(ReservationChanged),
    #[serde(rename = "reservation.expired")]
    ReservationExpired(ReservationChanged),
    #[serde(rename = "contract.proposed")]
    ContractProposed(ContractChanged),
    #[serde(rename = "contract.accepted")]
    ContractAccepted(ContractChanged),
    #[serde(rename = "contract.activated")]
    ContractActivated(ContractChanged),
    #[serde(rename = "contract.failed")]
    ContractFailed(ContractChanged),
    #[serde(rename = "contract.closing")]
    ContractClosing(ContractChanged),
    #[serde(rename = "contract.closed")]
    ContractClosed(ContractChanged),
    #[serde(rename = "provider.config_changed")]
    ProviderConfigChanged(ConfigChanged),
    #[serde(rename = "participant.account_linked")]
    AccountLinked(AccountLinked),
    #[serde(rename = "credential.issued")]
    CredentialIssued(CredentialIssued),
    #[serde(rename = "credential.rotated")]
    CredentialRotated(CredentialRotated),
    #[serde(rename = "credential.revoked")]
    CredentialRevoked(CredentialRevoked),
    #[serde(rename = "usage.settled")]
    UsageSettled(UsageSettled),
    #[serde(rename = "contract.escrow_low")]
    EscrowLow(EscrowLow),
    #[serde(rename = "contract.suspended")]
    ContractSuspended(ContractSuspended),
    #[serde(rename = "contract.resumed")]
    ContractResumed(ContractResumed),
    #[serde(rename = "certificate.issued")]
    CertificateIssued(CertificateChanged),
    #[serde(rename = "certificate.revoked")]
    CertificateRevoked(CertificateChanged),
}

/// A certified-metric credential issued (anchored) or revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateChanged {
    pub id: String,
    pub provider: Did,
    pub metric: String,
    /// SHA-256 of the credential's canonical bytes, as anchored (0x-hex).
    pub hash: String,
    pub cid: ContentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl EventBody {
    pub fn topic(&self) -> Topic {
        match self {
            Self::OfferPublished(_) => Topic::OfferPublished,
            Self::OfferUpdated(_) => Topic::OfferUpdated,
            Self::OfferWithdrawn(_) => Topic::OfferWithdrawn,
            Self::ReservationCreated(_) => Topic::ReservationCreated,
            Self::ReservationExpired(_) => Topic::ReservationExpired,
            Self::ContractProposed(_) => Topic::ContractProposed,
            Self::ContractAccepted(_) => Topic::ContractAccepted,
            Self::ContractActivated(_) => Topic::ContractActivated,
            Self::ContractFailed(_) => Topic::ContractFailed,
            Self::ContractClosing(_) => Topic::ContractClosing,
            Self::ContractClosed(_) => Topic::ContractClosed,
            Self::ProviderConfigChanged(_) => Topic::ProviderConfigChanged,
            Self::AccountLinked(_) => Topic::AccountLinked,
            Self::CredentialIssued(_) => Topic::CredentialIssued,
            Self::CredentialRotated(_) => Topic::CredentialRotated,
            Self::CredentialRevoked(_) => Topic::CredentialRevoked,
            Self::UsageSettled(_) => Topic::UsageSettled,
            Self::EscrowLow(_) => Topic::EscrowLow,
            Self::ContractSuspended(_) => Topic::ContractSuspended,
            Self::ContractResumed(_) => Topic::ContractResumed,
            Self::CertificateIssued(_) => Topic::CertificateIssued,
            Self::CertificateRevoked(_) => Topic::CertificateRevoked,
        }
    }

    /// The payload alone, as JSON (what the outbox stores next to the topic).
    pub fn payload_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("an event serialises");
        v.get_mut("payload")
            .map(serde_json::Value::take)
            .unwrap_or(serde_json::Value::Null)
    }

    /// The body from a topic and its payload (as the outbox stores them).
    pub fn from_parts(topic: &str, payload: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "topic": topic, "payload": payload }))
    }

    /// The contract the event is about, for contract events.
    pub fn contract(&self) -> Option<&ContractChanged> {
        match self {
            Self::ContractProposed(c)
            | Self::ContractAccepted(c)
            | Self::ContractActivated(c)
            | Self::ContractFailed(c)
            | Self::ContractClosing(c)
            | Self::ContractClosed(c) => Some(c),
            _ => None,
        }
    }
}

/// One event of the stream (`GET /v1/events`, SSE `data:`), resumable by `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Increasing; resume after it with `Last-Event-ID` or `?after=`.
    pub seq: u64,
    /// What the event is about (an offer, reservation or contract id, a did).
    pub subject: String,
    /// Unix seconds.
    pub at: u64,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    pub fn topic(&self) -> Topic {
        self.body.topic()
    }
}

/// `GET /v1/events` parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Continue after this event (0: from the first); default: from the newest on.
    #[param(minimum = 0)]
    pub after: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_bodies_agree() {
        let names: std::collections::HashSet<_> = Topic::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), Topic::ALL.len());
        for t in Topic::ALL {
            assert_eq!(Topic::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        let did = identity::did_of(&identity::generate().verifying_key());
        let body = EventBody::OfferWithdrawn(OfferWithdrawn {
            offer: "o-1".parse().unwrap(),
            provider: did,
        });
        let back = EventBody::from_parts(body.topic().as_str(), body.payload_json()).unwrap();
        assert_eq!(back, body);
        assert!(EventBody::from_parts("offer.exploded", body.payload_json()).is_err());
        assert!(EventBody::from_parts("offer.published", body.payload_json()).is_err());
        let e = Event {
            seq: 3,
            subject: "o-1".into(),
            at: 9,
            body,
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["topic"], "offer.withdrawn");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
    }

    #[test]
    fn an_admission_holds_only_with_the_brokers_signature_over_its_fields() {
        let broker = identity::generate();
        let broker_did = identity::did_of(&broker.verifying_key());
        let consumer = identity::did_of(&identity::generate().verifying_key());
        let contract: ContractId = format!("0x{}", "ab".repeat(32)).parse().unwrap();
        let hash: CredentialHash = "cd".repeat(32).parse().unwrap();
        let sign = |key: &ed25519_dalek::SigningKey, domain| {
            let text = CredentialIssued::admission_text(contract, &hash, &consumer, 10, 20);
            crate::ids::Ed25519Signature::sign(key, domain, text.as_bytes())
        };
        let issued = CredentialIssued {
            contract,
            hash: hash.clone(),
            version: 1,
            consumer: consumer.clone(),
            not_before: 10,
            expires_at: 20,
            broker_signature: sign(&broker, identity::Domain::Admission),
        };
        assert!(issued.verify(&broker_did));
        // Another consumer, a longer validity: not what the broker signed.
        let mut other = issued.clone();
        other.consumer = identity::did_of(&identity::generate().verifying_key());
        assert!(!other.verify(&broker_did));
        let mut longer = issued.clone();
        longer.expires_at = 99;
        assert!(!longer.verify(&broker_did));
        // Signed by another key, or by the broker as another kind of message.
        let mut stranger = issued.clone();
        stranger.broker_signature = sign(&identity::generate(), identity::Domain::Admission);
        assert!(!stranger.verify(&broker_did));
        let mut envelope = issued;
        envelope.broker_signature = sign(&broker, identity::Domain::Envelope);
        assert!(!envelope.verify(&broker_did));
    }
}
