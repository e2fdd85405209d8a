//! The contract document: what consumer and provider both sign, kept in the content store, its
//! keccak-256 and CID recorded on chain. One type, and one pure `build`, for the broker that
//! writes it and the SDK that rebuilds it to check every field before signing.

use alloy::primitives::Address;
use catalog::model::{AvailabilityWindow, CertifiedMetric, Offer, Plan};
use catalog::Credits;
use identity::Did;
use serde::{Deserialize, Serialize};

use crate::ids::{ContentId, ContractId, Ed25519Signature, OfferId};
use crate::reservations::{ReserveRequest, MAX_PERIODS};

pub const DOCUMENT_KIND: &str = "mercato.contract/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Party {
    pub did: Did,
    /// The EVM account linked to the did on chain.
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub account: Address,
}

/// How a plan is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PriceModel {
    /// Paid per period, in advance.
    Reserved,
    /// Settled from usage records.
    PayPerUse,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Price {
    pub model: PriceModel,
    /// Charged per period for the whole quantity (0 for pay-per-use).
    pub period_price: Credits,
    pub period_seconds: u64,
    /// Periods bought (reserved plans; 0 for pay-per-use).
    pub periods: u32,
}

/// Unit prices of usage, in credits, as the consumer signs them on chain (EIP-712
/// `UsagePrices`): a settled record is never charged more than these give for its usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsagePrices {
    pub cpu_core_hour: Credits,
    pub memory_gib_hour: Credits,
    pub gpu_hour: Credits,
    pub network_gb: Credits,
    pub data_access: Credits,
    /// Added to each record with GPU use (the region's GPU cost when bought).
    pub gpu_record_fee: Credits,
}

impl UsagePrices {
    pub fn chain(&self) -> contracts::purchase::Prices {
        let u = |c: Credits| alloy::primitives::U256::from(c.base_units());
        contracts::purchase::Prices {
            cpu_core_hour: u(self.cpu_core_hour),
            memory_gib_hour: u(self.memory_gib_hour),
            gpu_hour: u(self.gpu_hour),
            network_gb: u(self.network_gb),
            data_access: u(self.data_access),
            gpu_record_fee: u(self.gpu_record_fee),
        }
    }
}

/// The consumer's bound on usage charges (plans with pay-per-use prices), enforced on chain: at
/// most `cap` per `window_seconds`, each record at most what `prices` give for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageBound {
    pub prices: UsagePrices,
    pub cap: Credits,
    pub window_seconds: u64,
}

/// Default charging window of the usage bound.
pub const DEFAULT_CAP_WINDOW: u64 = 3600;
/// Bounds of a charging window (the Marketplace's `MAX_CAP_WINDOW` is 30 days).
pub const MIN_CAP_WINDOW: u64 = 60;
pub const MAX_CAP_WINDOW: u64 = 30 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sla {
    pub availability: AvailabilityWindow,
    /// What the provider declared about its metrics when the consumer bought (self-declared).
    pub declared_metrics: Vec<CertifiedMetric>,
    pub region: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContractDocument {
    /// Always `mercato.contract/v1`.
    pub kind: String,
    pub contract_id: ContractId,
    pub chain_id: u64,
    #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub marketplace: Address,
    pub consumer: Party,
    pub provider: Party,
    /// The provider's configuration (endpoints, policies, connection data) at purchase time.
    pub provider_config_cid: Option<ContentId>,
    pub offer_id: OfferId,
    pub offer_version: u32,
    pub plan: Plan,
    pub quantity: u32,
    pub price: Price,
    /// Escrowed at opening; the first period of a reserved plan is charged from it at once.
    pub deposit: Credits,
    /// What usage may be charged (none: no usage charges at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageBound>,
    /// The offer's green-energy share when bought: its reward lowers every usage charge.
    pub green_energy_percent: u8,
    pub issued_at: u64,
    pub sla: Sla,
    /// The consumer's WireGuard public key, when it connects over WireGuard (it generated the
    /// pair; the provider's agent peers with this key only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_wireguard_key: Option<crate::WireguardKey>,
}

impl ContractDocument {
    /// The bytes both parties sign and the content store keeps.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a contract document serialises")
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The terms hash recorded on chain: keccak-256 of the exact bytes.
    pub fn terms_hash(bytes: &[u8]) -> alloy::primitives::B256 {
        alloy::primitives::keccak256(bytes)
    }
}

/// What the signatures envelope (stored next to the document) holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedDocument {
    pub document_cid: ContentId,
    pub consumer: Did,
    pub consumer_signature: Ed25519Signature,
    pub provider: Did,
    pub provider_signature: Ed25519Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    #[error("offer {0} has no plan {1}")]
    NoPlan(String, String),
    #[error("quantity must be between 1 and the plan's capacity {0}")]
    Quantity(u32),
    #[error("periods must be between 1 and {MAX_PERIODS}")]
    Periods,
    #[error("a pay-per-use plan needs a deposit to escrow")]
    DepositRequired,
    #[error("the deposit {} credits is less than the price of the periods bought, {} credits", .deposit.human(), .needed.human())]
    DepositTooSmall { deposit: Credits, needed: Credits },
    #[error("the price overflows; buy fewer units or periods")]
    Overflow,
    #[error("the offer is outside its availability window")]
    Unavailable,
    #[error("the usage cap must be more than zero credits")]
    ZeroUsageCap,
    #[error("the charging window must be between {MIN_CAP_WINDOW} and {MAX_CAP_WINDOW} seconds")]
    CapWindow,
    #[error("usageCap and capWindow apply to plans with pay-per-use prices only")]
    NoUsagePrices,
}

/// The parts of a purchase the broker decides; the rest comes from the offer.
pub struct Parties {
    pub contract_id: ContractId,
    pub chain_id: u64,
    pub marketplace: Address,
    pub consumer: Party,
    pub provider: Party,
    pub provider_config_cid: Option<ContentId>,
    /// The region's GPU cost (BillingModels), added to each record with GPU use.
    pub gpu_record_fee: Credits,
    pub now: u64,
}

/// Builds the document a reservation offers for signing, or says why the request cannot be
/// bought.
pub fn build(
    offer: &Offer,
    req: &ReserveRequest,
    parties: Parties,
) -> Result<ContractDocument, TermsError> {
    let plan = offer
        .plan(req.plan_id.as_str())
        .ok_or_else(|| TermsError::NoPlan(offer.id.clone(), req.plan_id.to_string()))?;
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
                .checked_mul(u128::from(req.quantity))
                .ok_or(TermsError::Overflow)?;
            let needed = period_price
                .checked_mul(u128::from(periods))
                .ok_or(TermsError::Overflow)?;
            let price = Price {
                model: PriceModel::Reserved,
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
                model: PriceModel::PayPerUse,
                period_price: Credits::ZERO,
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
        (_, Some(d)) if d.is_zero() => return Err(TermsError::DepositRequired),
        (None, None) => return Err(TermsError::DepositRequired),
        (_, Some(d)) => d,
    };
    let usage = match &plan.pricing.pay_per_use {
        Some(p) => {
            let window_seconds = req.cap_window.unwrap_or(DEFAULT_CAP_WINDOW);
            if !(MIN_CAP_WINDOW..=MAX_CAP_WINDOW).contains(&window_seconds) {
                return Err(TermsError::CapWindow);
            }
            // Without a cap of its own the consumer bounds each window by the deposit.
            let cap = req.usage_cap.unwrap_or(deposit);
            if cap.is_zero() {
                return Err(TermsError::ZeroUsageCap);
            }
            Some(UsageBound {
                prices: UsagePrices {
                    cpu_core_hour: p.cpu_core_hour,
                    memory_gib_hour: p.memory_gib_hour,
                    gpu_hour: p.gpu_hour,
                    network_gb: p.network_gb,
                    data_access: p.data_access,
                    gpu_record_fee: parties.gpu_record_fee,
                },
                cap,
                window_seconds,
            })
        }
        None if req.usage_cap.is_some() || req.cap_window.is_some() => {
            return Err(TermsError::NoUsagePrices)
        }
        None => None,
    };
    Ok(ContractDocument {
        kind: DOCUMENT_KIND.into(),
        contract_id: parties.contract_id,
        chain_id: parties.chain_id,
        marketplace: parties.marketplace,
        consumer: parties.consumer,
        provider: parties.provider,
        provider_config_cid: parties.provider_config_cid,
        offer_id: req.offer_id.clone(),
        offer_version: offer.version,
        plan: plan.clone(),
        quantity: req.quantity,
        price,
        deposit,
        usage,
        green_energy_percent: offer.green_energy_percent,
        issued_at: parties.now,
        sla: Sla {
            availability: offer.availability,
            declared_metrics: offer.declared_metrics.clone(),
            region: offer.location.region.clone(),
            country: offer.location.country.clone(),
        },
        consumer_wireguard_key: req.wireguard_key.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::B256;
    use catalog::model::*;
    use catalog::Credits;

    fn offer(reserved: bool) -> Offer {
        let pricing = if reserved {
            Pricing {
                reserved: Some(ReservedPrice {
                    price: Credits::from_base_units(500),
                    period_seconds: 3600,
                }),
                pay_per_use: None,
            }
        } else {
            Pricing {
                reserved: None,
                pay_per_use: Some(UnitPrices {
                    cpu_core_hour: Credits::from_base_units(7),
                    ..UnitPrices::default()
                }),
            }
        };
        Offer {
            id: "o1".into(),
            version: 1,
            provider: "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp".into(),
            name: "o1".into(),
            description: String::new(),
            tags: vec![],
            location: Location {
                country: "FR".into(),
                region: "eu-west".into(),
                city: String::new(),
                latitude: 48.8,
                longitude: 2.3,
                notes: String::new(),
            },
            resources: Resources {
                compute: Some(Compute {
                    architecture: "amd64".into(),
                    cpu_millicores: 16_000,
                    memory_mib: 65_536,
                    storage_gib: 0,
                    pods: 0,
                }),
                ..Resources::default()
            },
            plans: vec![Plan {
                id: "p1".into(),
                name: "p1".into(),
                pricing,
                capacity: 10,
                unit: PlanUnit {
                    cpu_millicores: 1000,
                    ..PlanUnit::default()
                },
            }],
            green_energy_percent: 0,
            availability: AvailabilityWindow::default(),
            partitionability: None,
            declared_metrics: vec![],
            fluidos: Default::default(),
            signature: String::new(),
        }
    }

    fn party(did: &str) -> Party {
        Party {
            did: did.parse().unwrap(),
            account: Address::repeat_byte(1),
        }
    }

    fn parties() -> Parties {
        let did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
        Parties {
            contract_id: ContractId(B256::repeat_byte(1)),
            chain_id: 31337,
            marketplace: Address::ZERO,
            consumer: party(did),
            provider: party(did),
            provider_config_cid: None,
            gpu_record_fee: Credits::from_base_units(77),
            now: 100,
        }
    }

    fn req(quantity: u32, periods: Option<u32>, deposit: Option<u128>) -> ReserveRequest {
        ReserveRequest {
            offer_id: "o1".parse().unwrap(),
            plan_id: "p1".parse().unwrap(),
            quantity,
            periods,
            deposit: deposit.map(Credits::from_base_units),
            usage_cap: None,
            cap_window: None,
            wireguard_key: None,
        }
    }

    #[test]
    fn reserved_plans_escrow_the_periods_bought() {
        let o = offer(true);
        let c = Credits::from_base_units;
        let d = build(&o, &req(3, Some(2), None), parties()).unwrap();
        assert_eq!(d.price.period_price, c(1500));
        assert_eq!(d.deposit, c(3000));
        assert_eq!(d.price.period_seconds, 3600);
        assert_eq!(ContractDocument::parse(&d.to_bytes()).unwrap(), d);
        assert_eq!(
            build(&o, &req(3, Some(2), Some(2999)), parties()),
            Err(TermsError::DepositTooSmall {
                deposit: c(2999),
                needed: c(3000)
            })
        );
        assert_eq!(
            build(&o, &req(3, Some(2), Some(5000)), parties())
                .unwrap()
                .deposit,
            c(5000)
        );
        assert_eq!(
            build(&o, &req(1, Some(0), None), parties()),
            Err(TermsError::Periods)
        );
        assert_eq!(
            build(&o, &req(11, None, None), parties()),
            Err(TermsError::Quantity(10))
        );
        assert_eq!(
            build(&o, &req(0, None, None), parties()),
            Err(TermsError::Quantity(10))
        );
    }

    #[test]
    fn pay_per_use_needs_a_deposit_and_bad_requests_are_named() {
        let o = offer(false);
        assert_eq!(
            build(&o, &req(1, None, None), parties()),
            Err(TermsError::DepositRequired)
        );
        assert_eq!(
            build(&o, &req(1, None, Some(0)), parties()),
            Err(TermsError::DepositRequired)
        );
        let d = build(&o, &req(2, None, Some(900)), parties()).unwrap();
        assert_eq!(
            (d.deposit, d.price.period_price),
            (Credits::from_base_units(900), Credits::ZERO)
        );
        // The usage bound: the deposit per hour unless the consumer names its own; the plan's
        // prices and the region's GPU fee, signed.
        let u = d.usage.unwrap();
        assert_eq!(
            (u.cap, u.window_seconds),
            (Credits::from_base_units(900), 3600)
        );
        assert_eq!(u.prices.gpu_record_fee, Credits::from_base_units(77));
        let mut capped = req(1, None, Some(900));
        capped.usage_cap = Some(Credits::from_base_units(50));
        capped.cap_window = Some(600);
        let u = build(&o, &capped, parties()).unwrap().usage.unwrap();
        assert_eq!(
            (u.cap, u.window_seconds),
            (Credits::from_base_units(50), 600)
        );
        capped.cap_window = Some(59);
        assert_eq!(build(&o, &capped, parties()), Err(TermsError::CapWindow));
        capped.cap_window = None;
        capped.usage_cap = Some(Credits::ZERO);
        assert_eq!(build(&o, &capped, parties()), Err(TermsError::ZeroUsageCap));
        // A reserved plan has no usage charges to bound.
        let mut reserved = req(1, Some(1), None);
        assert_eq!(
            build(&offer(true), &reserved, parties()).unwrap().usage,
            None
        );
        reserved.usage_cap = Some(Credits::from_base_units(1));
        assert_eq!(
            build(&offer(true), &reserved, parties()),
            Err(TermsError::NoUsagePrices)
        );
        let mut r = req(1, None, Some(1));
        r.plan_id = "nope".parse().unwrap();
        assert!(matches!(
            build(&o, &r, parties()),
            Err(TermsError::NoPlan(..))
        ));
        let mut late = o.clone();
        late.availability.until = Some(50);
        assert_eq!(
            build(&late, &req(1, None, Some(1)), parties()),
            Err(TermsError::Unavailable)
        );
        // Every field is bound by the hash.
        let a = ContractDocument::terms_hash(&d.to_bytes());
        let mut d2 = d.clone();
        d2.deposit = Credits::from_base_units(901);
        assert_ne!(a, ContractDocument::terms_hash(&d2.to_bytes()));
    }
}
