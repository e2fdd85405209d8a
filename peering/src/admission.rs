//! What the provider's agent admits: credentials by hash, each bound to a contract, a consumer
//! key and a validity window, revocable. Pure: the agent feeds it the broker's events and
//! persists it, so it keeps admitting (and refusing) while the broker is down.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Admission {
    pub hash: String,
    pub contract_id: String,
    /// The consumer's did:key; the channel's initiator key must be its X25519 key.
    pub consumer: String,
    pub not_before: u64,
    pub expires_at: u64,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unknown credential")]
    Unknown,
    #[error("the credential is for another contract")]
    WrongContract,
    #[error("the credential belongs to another consumer")]
    WrongConsumer,
    #[error("the credential is not valid yet")]
    NotYetValid,
    #[error("the credential has expired")]
    Expired,
    #[error("the credential was revoked")]
    Revoked,
}

/// How far the agent's clock may lag the broker's: a credential issued "now" by the broker is
/// admitted up to this early. Expiry has no such allowance (a revocation by expiry is not delayed).
pub const CLOCK_SKEW_SECS: u64 = 30;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionTable {
    entries: BTreeMap<String, Admission>,
    /// The last broker event applied (to resume the event stream after it).
    #[serde(default)]
    pub cursor: u64,
}

impl AdmissionTable {
    pub fn admit(&mut self, a: Admission) {
        self.entries.insert(a.hash.clone(), a);
    }

    /// An old credential replaced by a new one works until `until`.
    pub fn expire_at(&mut self, hash: &str, until: u64) {
        if let Some(a) = self.entries.get_mut(hash) {
            a.expires_at = a.expires_at.min(until);
        }
    }

    pub fn revoke(&mut self, hash: &str) {
        if let Some(a) = self.entries.get_mut(hash) {
            a.revoked = true;
        }
    }

    pub fn revoke_contract(&mut self, contract: &str) {
        for a in self.entries.values_mut() {
            if a.contract_id == contract {
                a.revoked = true;
            }
        }
    }

    /// Admits `hash` for `contract` from the consumer `consumer` at `now`, or says why not.
    pub fn check(
        &self,
        hash: &str,
        contract: &str,
        consumer: &str,
        now: u64,
    ) -> Result<&Admission, Refusal> {
        let a = self.entries.get(hash).ok_or(Refusal::Unknown)?;
        if a.contract_id != contract {
            return Err(Refusal::WrongContract);
        }
        if a.consumer != consumer {
            return Err(Refusal::WrongConsumer);
        }
        if a.revoked {
            return Err(Refusal::Revoked);
        }
        if now + CLOCK_SKEW_SECS < a.not_before {
            return Err(Refusal::NotYetValid);
        }
        if now >= a.expires_at {
            return Err(Refusal::Expired);
        }
        Ok(a)
    }

    /// Drops the entries expired at `now` (they would be refused anyway); returns how many.
    pub fn prune(&mut self, now: u64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, a| a.expires_at > now);
        before - self.entries.len()
    }

    pub fn get(&self, hash: &str) -> Option<&Admission> {
        self.entries.get(hash)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_checks_every_condition() {
        let mut t = AdmissionTable::default();
        t.admit(Admission {
            hash: "h".into(),
            contract_id: "c".into(),
            consumer: "did:a".into(),
            not_before: 10,
            expires_at: 20,
            revoked: false,
        });
        assert!(t.check("h", "c", "did:a", 10).is_ok());
        assert_eq!(t.check("x", "c", "did:a", 10), Err(Refusal::Unknown));
        assert_eq!(t.check("h", "d", "did:a", 10), Err(Refusal::WrongContract));
        assert_eq!(t.check("h", "c", "did:b", 10), Err(Refusal::WrongConsumer));
        // Issued by a broker whose clock is ahead: admitted within the skew allowance only.
        assert!(t.check("h", "c", "did:a", 0).is_ok());
        t.admit(Admission {
            not_before: 100,
            ..t.get("h").unwrap().clone()
        });
        assert_eq!(
            t.check("h", "c", "did:a", 99 - CLOCK_SKEW_SECS),
            Err(Refusal::NotYetValid)
        );
        t.admit(Admission {
            not_before: 10,
            ..t.get("h").unwrap().clone()
        });
        assert_eq!(t.check("h", "c", "did:a", 20), Err(Refusal::Expired));
        t.expire_at("h", 15);
        assert_eq!(t.check("h", "c", "did:a", 15), Err(Refusal::Expired));
        t.revoke_contract("c");
        assert_eq!(t.check("h", "c", "did:a", 12), Err(Refusal::Revoked));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<AdmissionTable>(&json).unwrap(), t);
        // Pruning drops what expired, and only that.
        assert_eq!(t.prune(14), 0);
        assert_eq!(t.prune(15), 1);
        assert!(t.is_empty());
    }
}
