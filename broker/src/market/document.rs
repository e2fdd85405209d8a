//! The contract document: what consumer and provider both sign, stored in the content store, its
//! keccak-256 and CID recorded on chain. Pure: built from the offer, the plan and the parties.

use alloy::primitives::{keccak256, B256};
use catalog::model::{AvailabilityWindow, CertifiedMetric, Credits, Offer, Plan};
use serde::{Deserialize, Serialize};

pub const DOCUMENT_KIND: &str = "mercato.contract/v1";
/// Most periods a reserved plan can be bought for at once.
pub const MAX_PERIODS: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Party {
    pub did: String,
    /// The EVM account linked to the did on chain.
    pub account: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Price {
    /// `reserved` (paid per period in advance) or `payPerUse` (settled from usage).
    pub model: String,
    /// Charged per period for the whole quantity (0 for pay-per-use).
    pub period_price: Credits,
    pub period_seconds: u64,
    /// Periods bought (reserved plans).
    pub periods: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sla {
    pub availability: AvailabilityWindow,
    pub certified_metrics: Vec<CertifiedMetric>,
    pub region: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContractDocument {
    pub kind: String,
    pub contract_id: String,
    pub chain_id: u64,
    pub marketplace: String,
    pub consumer: Party,
    pub provider: Party,
    /// The provider's configuration (endpoints, policies, connection data) at purchase time.
    pub provider_config_cid: Option<String>,
    pub offer_id: String,
    pub offer_version: u32,
    pub plan: Plan,
    pub quantity: u32,
    pub price: Price,
    /// Escrowed at opening; the first period of a reserved plan is charged from it at once.
    pub deposit: Credits,
    /// The offer's green-energy share when bought: its reward lowers every usage charge.
    pub green_energy_percent: u8,
    pub issued_at: u64,
    pub sla: Sla,
}

pub use catalog::api::ReserveRequest as ReservationRequest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    #[error("offer {0} has no plan {1}")]
    NoPlan(String, String),
    #[error("quantity must be between 1 and the plan's capacity {0}")]
    Quantity(u32),
    #[error("periods must be between 1 and {MAX_PERIODS}")]
    Periods,
    #[error("a pay-per-use plan needs a deposit (credit base units) to escrow")]
    DepositRequired,
    #[error("the deposit {deposit} is less than the price of the periods bought, {needed}")]
    DepositTooSmall { deposit: Credits, needed: Credits },
    #[error("the price overflows; buy fewer units or periods")]
    Overflow,
    #[error("the offer is outside its availability window")]
    Unavailable,
}

/// The parts of a purchase the broker decides; the rest comes from the offer.
pub struct Parties<'a> {
    pub contract_id: B256,
    pub chain_id: u64,
    pub marketplace: &'a str,
    pub consumer: Party,
    pub provider: Party,
    pub provider_config_cid: Option<String>,
    pub now: u64,
}

/// Builds the document a reservation offers for signing, or says why the request cannot be
/// bought.
pub fn build(
    offer: &Offer,
    req: &ReservationRequest,
    parties: Parties<'_>,
) -> Result<ContractDocument, TermsError> {
    let plan = offer
        .plan(&req.plan_id)
        .ok_or_else(|| TermsError::NoPlan(offer.id.clone(), req.plan_id.clone()))?;
    if req.quantity == 0 || req.quantity > plan.capacity {
        return Err(TermsError::Quantity(plan.capacity));
    }
    let w = &offer.availability;
    if w.from.is_some_and(|f| parties.now < f) || w.until.is_some_and(|u| parties.now >= u) {
        return Err(TermsError::Unavailable);
    }
    let (price, needed) = match &plan.pricing.reserved {
        Some(r) => {
            let periods = req.periods.unwrap_or(1);
            if periods == 0 || periods > MAX_PERIODS {
                return Err(TermsError::Periods);
            }
            let period_price = r
                .price
                .checked_mul(u64::from(req.quantity))
                .ok_or(TermsError::Overflow)?;
            let needed = period_price
                .checked_mul(u64::from(periods))
                .ok_or(TermsError::Overflow)?;
            let price = Price {
                model: "reserved".into(),
                period_price,
                period_seconds: r.period_seconds,
                periods,
            };
            (price, Some(needed))
        }
        None => {
            if req.periods.is_some() {
                return Err(TermsError::Periods);
            }
            let price = Price {
                model: "payPerUse".into(),
                period_price: 0,
                period_seconds: 0,
                periods: 0,
            };
            (price, None)
        }
    };
    let deposit = match (needed, req.deposit) {
        (Some(needed), None) => needed,
        (Some(needed), Some(d)) if d < needed => {
            return Err(TermsError::DepositTooSmall { deposit: d, needed })
        }
        (_, Some(0)) | (None, None) => return Err(TermsError::DepositRequired),
        (_, Some(d)) => d,
    };
    Ok(ContractDocument {
        kind: DOCUMENT_KIND.into(),
        contract_id: parties.contract_id.to_string(),
        chain_id: parties.chain_id,
        marketplace: parties.marketplace.to_string(),
        consumer: parties.consumer,
        provider: parties.provider,
        provider_config_cid: parties.provider_config_cid,
        offer_id: offer.id.clone(),
        offer_version: offer.version,
        plan: plan.clone(),
        quantity: req.quantity,
        price,
        deposit,
        green_energy_percent: offer.green_energy_percent,
        issued_at: parties.now,
        sla: Sla {
            availability: offer.availability,
            certified_metrics: offer.certified_metrics.clone(),
            region: offer.location.region.clone(),
            country: offer.location.country.clone(),
        },
    })
}

impl ContractDocument {
    /// The bytes both parties sign and the content store keeps.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The terms hash recorded on chain.
pub fn terms_hash(document: &[u8]) -> B256 {
    keccak256(document)
}

/// What the signatures envelope (stored next to the document) holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedDocument {
    pub document_cid: String,
    pub consumer: String,
    pub consumer_signature: String,
    pub provider: String,
    pub provider_signature: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::model::{Pricing, ReservedPrice, UnitPrices};

    fn offer(reserved: bool) -> Offer {
        let mut o = catalog::synth::Generator::new(1, 1, false).offer("o1", 1);
        o.plans[0].capacity = 10;
        o.plans[0].pricing = if reserved {
            Pricing {
                reserved: Some(ReservedPrice {
                    price: 500,
                    period_seconds: 3600,
                }),
                pay_per_use: None,
            }
        } else {
            Pricing {
                reserved: None,
                pay_per_use: Some(UnitPrices {
                    cpu_core_hour: 7,
                    ..UnitPrices::default()
                }),
            }
        };
        o.availability = AvailabilityWindow::default();
        o
    }

    fn parties() -> Parties<'static> {
        Parties {
            contract_id: B256::repeat_byte(1),
            chain_id: 31337,
            marketplace: "0x00",
            consumer: Party {
                did: "did:key:c".into(),
                account: "0x01".into(),
            },
            provider: Party {
                did: "did:key:p".into(),
                account: "0x02".into(),
            },
            provider_config_cid: None,
            now: 100,
        }
    }

    fn req(
        o: &Offer,
        quantity: u32,
        periods: Option<u32>,
        deposit: Option<u64>,
    ) -> ReservationRequest {
        ReservationRequest {
            offer_id: o.id.clone(),
            plan_id: o.plans[0].id.clone(),
            quantity,
            periods,
            deposit,
        }
    }

    #[test]
    fn reserved_plans_escrow_the_periods_bought() {
        let o = offer(true);
        let d = build(&o, &req(&o, 3, Some(2), None), parties()).unwrap();
        assert_eq!(d.price.period_price, 1500);
        assert_eq!(d.deposit, 3000);
        assert_eq!(d.price.period_seconds, 3600);
        assert_eq!(ContractDocument::parse(&d.to_bytes()).unwrap(), d);
        assert_eq!(
            build(&o, &req(&o, 3, Some(2), Some(2999)), parties()),
            Err(TermsError::DepositTooSmall {
                deposit: 2999,
                needed: 3000
            })
        );
        assert_eq!(
            build(&o, &req(&o, 3, Some(2), Some(5000)), parties())
                .unwrap()
                .deposit,
            5000
        );
        assert_eq!(
            build(&o, &req(&o, 1, Some(0), None), parties()),
            Err(TermsError::Periods)
        );
        assert_eq!(
            build(&o, &req(&o, 11, None, None), parties()),
            Err(TermsError::Quantity(10))
        );
        assert_eq!(
            build(&o, &req(&o, 0, None, None), parties()),
            Err(TermsError::Quantity(10))
        );
    }

    #[test]
    fn pay_per_use_needs_a_deposit_and_bad_requests_are_named() {
        let o = offer(false);
        assert_eq!(
            build(&o, &req(&o, 1, None, None), parties()),
            Err(TermsError::DepositRequired)
        );
        assert_eq!(
            build(&o, &req(&o, 1, None, Some(0)), parties()),
            Err(TermsError::DepositRequired)
        );
        let d = build(&o, &req(&o, 2, None, Some(900)), parties()).unwrap();
        assert_eq!((d.deposit, d.price.period_price), (900, 0));
        let mut r = req(&o, 1, None, Some(1));
        r.plan_id = "nope".into();
        assert!(matches!(
            build(&o, &r, parties()),
            Err(TermsError::NoPlan(..))
        ));
        let mut late = o.clone();
        late.availability.until = Some(50);
        assert_eq!(
            build(&late, &req(&late, 1, None, Some(1)), parties()),
            Err(TermsError::Unavailable)
        );
        // Every field is bound by the hash.
        let a = terms_hash(&d.to_bytes());
        let mut d2 = d.clone();
        d2.deposit += 1;
        assert_ne!(a, terms_hash(&d2.to_bytes()));
    }
}
