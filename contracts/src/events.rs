//! Every event the six contracts log, decoded into one vocabulary that the broker's indexer and
//! the auditor's independent verifier share. Events an auditor reasons about (money, contracts,
//! batches, credentials, configurations, roles) get typed variants; the rest (parameters,
//! approvals, admin transfers) keep their ABI name so that nothing a contract logs is dropped.

use std::collections::HashMap;
use std::sync::OnceLock;

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::sol_types::SolEventInterface;

use crate::bindings::{
    CredentialRegistry, CreditToken, Marketplace, ParticipantRegistry, UsageSettlement,
};

/// Which of the six contracts logged an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Token,
    Registry,
    Marketplace,
    Billing,
    Settlement,
    Credentials,
}

impl Source {
    pub const ALL: [Source; 6] = [
        Self::Token,
        Self::Registry,
        Self::Marketplace,
        Self::Billing,
        Self::Settlement,
        Self::Credentials,
    ];

    /// The contract's name, as in the deployment and the artifacts.
    pub fn contract_name(self) -> &'static str {
        match self {
            Self::Token => "CreditToken",
            Self::Registry => "ParticipantRegistry",
            Self::Marketplace => "Marketplace",
            Self::Billing => "BillingModels",
            Self::Settlement => "UsageSettlement",
            Self::Credentials => "CredentialRegistry",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.contract_name() == name)
    }

    fn artifact(self) -> &'static str {
        match self {
            Self::Token => include_str!("../artifacts/CreditToken.json"),
            Self::Registry => include_str!("../artifacts/ParticipantRegistry.json"),
            Self::Marketplace => include_str!("../artifacts/Marketplace.json"),
            Self::Billing => include_str!("../artifacts/BillingModels.json"),
            Self::Settlement => include_str!("../artifacts/UsageSettlement.json"),
            Self::Credentials => include_str!("../artifacts/CredentialRegistry.json"),
        }
    }
}

/// The `ref` a reserved period's charge carries (`bytes32("period")`); a usage charge carries its
/// settlement batch's id instead.
pub fn period_ref() -> B256 {
    let mut b = [0u8; 32];
    b[..6].copy_from_slice(b"period");
    B256::from(b)
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerEvent {
    // CreditToken
    Transfer {
        from: Address,
        to: Address,
        value: U256,
    },
    FaucetDrip {
        account: Address,
        amount: U256,
    },
    // ParticipantRegistry
    ParticipantRegistered {
        account: Address,
        did_hash: B256,
        did: String,
        role: u8,
    },
    ParticipantActiveChanged {
        account: Address,
        active: bool,
    },
    ConfigUpdated {
        account: Address,
        version: u64,
        cid: String,
    },
    // Marketplace
    ContractOpened {
        contract: B256,
        consumer: Address,
        provider: Address,
        terms_hash: B256,
        terms_cid: String,
        deposit: U256,
        period_price: U256,
        period: u64,
    },
    /// Where both parties' signatures of the contract's document are kept.
    TermsSigned {
        contract: B256,
        signatures_cid: String,
    },
    ToppedUp {
        contract: B256,
        by: Address,
        amount: U256,
        escrow: U256,
    },
    /// A reserved period (`reference == period_ref()`) or a settlement batch's usage charge.
    Charged {
        contract: B256,
        reference: B256,
        amount: U256,
        fee: U256,
        escrow: U256,
    },
    Suspended {
        contract: B256,
        reason: B256,
    },
    Resumed {
        contract: B256,
    },
    CloseRequested {
        contract: B256,
        by: Address,
        closable_at: u64,
    },
    ContractClosed {
        contract: B256,
        by: Address,
        refund: U256,
    },
    PeriodEarned {
        contract: B256,
        amount: U256,
        fee: U256,
    },
    PeriodRefunded {
        contract: B256,
        amount: U256,
    },
    UsageEarned {
        contract: B256,
        reference: B256,
        amount: U256,
        fee: U256,
    },
    OverchargeRefunded {
        contract: B256,
        reference: B256,
        amount: U256,
    },
    Withdrawn {
        provider: Address,
        to: Address,
        amount: U256,
    },
    FeesWithdrawn {
        to: Address,
        amount: U256,
    },
    // UsageSettlement
    BatchSettled {
        batch: B256,
        root: B256,
        records_cid: String,
        record_count: u32,
        contracts: U256,
        total: U256,
    },
    ChargeSkipped {
        batch: B256,
        contract: B256,
        amount: U256,
        reason: Bytes,
    },
    OverchargeProven {
        batch: B256,
        contract: B256,
        record_hash: B256,
        proven: U256,
        refunded: U256,
    },
    // CredentialRegistry
    CredentialAnchored {
        hash: B256,
        issuer: Address,
        cid: String,
    },
    CredentialRevoked {
        hash: B256,
        by: Address,
        reason: B256,
    },
    // Every contract's access control
    RoleGranted {
        role: B256,
        account: Address,
        sender: Address,
    },
    RoleRevoked {
        role: B256,
        account: Address,
        sender: Address,
    },
    /// Anything else the contract's ABI declares (parameters, approvals, admin transfers), by name.
    Other {
        name: &'static str,
    },
}

/// A log that none of the contract's events decodes: not Mercato's contract, or a corrupt log.
#[derive(Debug, thiserror::Error)]
#[error("{source_name} logged an event its ABI does not declare (topic0 {topic0:?}): {reason}")]
pub struct UnknownEvent {
    pub source_name: &'static str,
    pub topic0: Option<B256>,
    pub reason: String,
}

impl LedgerEvent {
    /// Decodes one log of `source`.
    pub fn decode(source: Source, topics: &[B256], data: &[u8]) -> Result<Self, UnknownEvent> {
        let fail = |reason: String| UnknownEvent {
            source_name: source.contract_name(),
            topic0: topics.first().copied(),
            reason,
        };
        let decoded = match source {
            Source::Token => {
                CreditToken::CreditTokenEvents::decode_raw_log(topics, data).map(Self::from_token)
            }
            Source::Registry => {
                ParticipantRegistry::ParticipantRegistryEvents::decode_raw_log(topics, data)
                    .map(Self::from_registry)
            }
            Source::Marketplace => Marketplace::MarketplaceEvents::decode_raw_log(topics, data)
                .map(Self::from_marketplace),
            Source::Settlement => {
                UsageSettlement::UsageSettlementEvents::decode_raw_log(topics, data)
                    .map(Self::from_settlement)
            }
            Source::Credentials => {
                CredentialRegistry::CredentialRegistryEvents::decode_raw_log(topics, data)
                    .map(Self::from_credentials)
            }
            // BillingModels logs only parameters and roles.
            Source::Billing => Ok(Self::generic(source, topics)),
        };
        let event = match decoded.map_err(|e| fail(e.to_string()))? {
            Self::Other { name: "" } => Self::generic(source, topics),
            e => e,
        };
        match event {
            Self::Other { name: "" } => Err(fail("unknown topic".into())),
            e => Ok(e),
        }
    }

    /// An event without a typed variant, named from the contract's ABI (empty when unknown).
    fn generic(source: Source, topics: &[B256]) -> Self {
        if let Some((role, account, sender)) = role_topics(topics) {
            if topics[0] == role_signature("RoleGranted") {
                return Self::RoleGranted {
                    role,
                    account,
                    sender,
                };
            }
            if topics[0] == role_signature("RoleRevoked") {
                return Self::RoleRevoked {
                    role,
                    account,
                    sender,
                };
            }
        }
        let name = topics
            .first()
            .and_then(|t| event_names(source).get(t).copied())
            .unwrap_or("");
        Self::Other { name }
    }

    fn from_token(e: CreditToken::CreditTokenEvents) -> Self {
        use CreditToken::CreditTokenEvents as E;
        match e {
            E::Transfer(e) => Self::Transfer {
                from: e.from,
                to: e.to,
                value: e.value,
            },
            E::FaucetDrip(e) => Self::FaucetDrip {
                account: e.account,
                amount: e.amount,
            },
            _ => Self::Other { name: "" },
        }
    }

    fn from_registry(e: ParticipantRegistry::ParticipantRegistryEvents) -> Self {
        use ParticipantRegistry::ParticipantRegistryEvents as E;
        match e {
            E::ParticipantRegistered(e) => Self::ParticipantRegistered {
                account: e.account,
                did_hash: e.didHash,
                did: e.did,
                role: e.role,
            },
            E::ParticipantActiveChanged(e) => Self::ParticipantActiveChanged {
                account: e.account,
                active: e.active,
            },
            E::ConfigUpdated(e) => Self::ConfigUpdated {
                account: e.account,
                version: e.version,
                cid: e.cid,
            },
            _ => Self::Other { name: "" },
        }
    }

    fn from_marketplace(e: Marketplace::MarketplaceEvents) -> Self {
        use Marketplace::MarketplaceEvents as E;
        match e {
            E::ContractOpened(e) => Self::ContractOpened {
                contract: e.contractId,
                consumer: e.consumer,
                provider: e.provider,
                terms_hash: e.termsHash,
                terms_cid: e.termsCid,
                deposit: e.deposit,
                period_price: e.periodPrice,
                period: e.period,
            },
            E::TermsSigned(e) => Self::TermsSigned {
                contract: e.contractId,
                signatures_cid: e.signaturesCid,
            },
            E::ToppedUp(e) => Self::ToppedUp {
                contract: e.contractId,
                by: e.by,
                amount: e.amount,
                escrow: e.escrow,
            },
            E::Charged(e) => Self::Charged {
                contract: e.contractId,
                reference: e.r#ref,
                amount: e.amount,
                fee: e.fee,
                escrow: e.escrow,
            },
            E::Suspended(e) => Self::Suspended {
                contract: e.contractId,
                reason: e.reason,
            },
            E::Resumed(e) => Self::Resumed {
                contract: e.contractId,
            },
            E::CloseRequested(e) => Self::CloseRequested {
                contract: e.contractId,
                by: e.by,
                closable_at: e.closableAt,
            },
            E::ContractClosed(e) => Self::ContractClosed {
                contract: e.contractId,
                by: e.by,
                refund: e.refund,
            },
            E::PeriodEarned(e) => Self::PeriodEarned {
                contract: e.contractId,
                amount: e.amount,
                fee: e.fee,
            },
            E::PeriodRefunded(e) => Self::PeriodRefunded {
                contract: e.contractId,
                amount: e.amount,
            },
            E::UsageEarned(e) => Self::UsageEarned {
                contract: e.contractId,
                reference: e.r#ref,
                amount: e.amount,
                fee: e.fee,
            },
            E::OverchargeRefunded(e) => Self::OverchargeRefunded {
                contract: e.contractId,
                reference: e.r#ref,
                amount: e.amount,
            },
            E::Withdrawn(e) => Self::Withdrawn {
                provider: e.provider,
                to: e.to,
                amount: e.amount,
            },
            E::FeesWithdrawn(e) => Self::FeesWithdrawn {
                to: e.to,
                amount: e.amount,
            },
            _ => Self::Other { name: "" },
        }
    }

    fn from_settlement(e: UsageSettlement::UsageSettlementEvents) -> Self {
        use UsageSettlement::UsageSettlementEvents as E;
        match e {
            E::BatchSettled(e) => Self::BatchSettled {
                batch: e.batchId,
                root: e.merkleRoot,
                records_cid: e.recordsCid,
                record_count: e.recordCount,
                contracts: e.contracts,
                total: e.total,
            },
            E::ChargeSkipped(e) => Self::ChargeSkipped {
                batch: e.batchId,
                contract: e.contractId,
                amount: e.amount,
                reason: e.reason,
            },
            E::OverchargeProven(e) => Self::OverchargeProven {
                batch: e.batchId,
                contract: e.contractId,
                record_hash: e.recordHash,
                proven: e.proven,
                refunded: e.refunded,
            },
            _ => Self::Other { name: "" },
        }
    }

    fn from_credentials(e: CredentialRegistry::CredentialRegistryEvents) -> Self {
        use CredentialRegistry::CredentialRegistryEvents as E;
        match e {
            E::CredentialAnchored(e) => Self::CredentialAnchored {
                hash: e.credentialHash,
                issuer: e.issuer,
                cid: e.cid,
            },
            E::CredentialRevoked(e) => Self::CredentialRevoked {
                hash: e.credentialHash,
                by: e.by,
                reason: e.reason,
            },
            _ => Self::Other { name: "" },
        }
    }

    /// The event's name, as in the contract's ABI.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Transfer { .. } => "Transfer",
            Self::FaucetDrip { .. } => "FaucetDrip",
            Self::ParticipantRegistered { .. } => "ParticipantRegistered",
            Self::ParticipantActiveChanged { .. } => "ParticipantActiveChanged",
            Self::ConfigUpdated { .. } => "ConfigUpdated",
            Self::ContractOpened { .. } => "ContractOpened",
            Self::TermsSigned { .. } => "TermsSigned",
            Self::ToppedUp { .. } => "ToppedUp",
            Self::Charged { .. } => "Charged",
            Self::Suspended { .. } => "Suspended",
            Self::Resumed { .. } => "Resumed",
            Self::CloseRequested { .. } => "CloseRequested",
            Self::ContractClosed { .. } => "ContractClosed",
            Self::PeriodEarned { .. } => "PeriodEarned",
            Self::PeriodRefunded { .. } => "PeriodRefunded",
            Self::UsageEarned { .. } => "UsageEarned",
            Self::OverchargeRefunded { .. } => "OverchargeRefunded",
            Self::Withdrawn { .. } => "Withdrawn",
            Self::FeesWithdrawn { .. } => "FeesWithdrawn",
            Self::BatchSettled { .. } => "BatchSettled",
            Self::ChargeSkipped { .. } => "ChargeSkipped",
            Self::OverchargeProven { .. } => "OverchargeProven",
            Self::CredentialAnchored { .. } => "CredentialAnchored",
            Self::CredentialRevoked { .. } => "CredentialRevoked",
            Self::RoleGranted { .. } => "RoleGranted",
            Self::RoleRevoked { .. } => "RoleRevoked",
            Self::Other { name } => name,
        }
    }

    /// The Mercato contract (agreement) the event is about, if any.
    pub fn contract(&self) -> Option<B256> {
        match self {
            Self::ContractOpened { contract, .. }
            | Self::TermsSigned { contract, .. }
            | Self::ToppedUp { contract, .. }
            | Self::Charged { contract, .. }
            | Self::Suspended { contract, .. }
            | Self::Resumed { contract }
            | Self::CloseRequested { contract, .. }
            | Self::ContractClosed { contract, .. }
            | Self::PeriodEarned { contract, .. }
            | Self::PeriodRefunded { contract, .. }
            | Self::UsageEarned { contract, .. }
            | Self::OverchargeRefunded { contract, .. }
            | Self::ChargeSkipped { contract, .. }
            | Self::OverchargeProven { contract, .. } => Some(*contract),
            _ => None,
        }
    }

    /// The settlement batch the event belongs to, if any.
    pub fn batch(&self) -> Option<B256> {
        match self {
            Self::Charged { reference, .. }
            | Self::UsageEarned { reference, .. }
            | Self::OverchargeRefunded { reference, .. }
                if *reference != period_ref() =>
            {
                Some(*reference)
            }
            Self::BatchSettled { batch, .. }
            | Self::ChargeSkipped { batch, .. }
            | Self::OverchargeProven { batch, .. } => Some(*batch),
            _ => None,
        }
    }

    /// The participants an event names: (first, second), e.g. (consumer, provider), (from, to).
    pub fn accounts(&self) -> (Option<Address>, Option<Address>) {
        match self {
            Self::Transfer { from, to, .. } => (Some(*from), Some(*to)),
            Self::FaucetDrip { account, .. }
            | Self::ParticipantRegistered { account, .. }
            | Self::ParticipantActiveChanged { account, .. }
            | Self::ConfigUpdated { account, .. } => (Some(*account), None),
            Self::ContractOpened {
                consumer, provider, ..
            } => (Some(*consumer), Some(*provider)),
            Self::ToppedUp { by, .. }
            | Self::CloseRequested { by, .. }
            | Self::ContractClosed { by, .. } => (Some(*by), None),
            Self::Withdrawn { provider, to, .. } => (Some(*provider), Some(*to)),
            Self::FeesWithdrawn { to, .. } => (None, Some(*to)),
            Self::CredentialAnchored { issuer, .. } => (Some(*issuer), None),
            Self::CredentialRevoked { by, .. } => (Some(*by), None),
            Self::RoleGranted {
                account, sender, ..
            }
            | Self::RoleRevoked {
                account, sender, ..
            } => (Some(*account), Some(*sender)),
            _ => (None, None),
        }
    }

    /// The amount of credits the event moves or states (base units), and the broker's fee of it.
    pub fn amounts(&self) -> (Option<U256>, Option<U256>) {
        match self {
            Self::Transfer { value, .. } => (Some(*value), None),
            Self::FaucetDrip { amount, .. }
            | Self::ToppedUp { amount, .. }
            | Self::PeriodRefunded { amount, .. }
            | Self::OverchargeRefunded { amount, .. }
            | Self::Withdrawn { amount, .. }
            | Self::FeesWithdrawn { amount, .. }
            | Self::ChargeSkipped { amount, .. } => (Some(*amount), None),
            Self::ContractOpened { deposit, .. } => (Some(*deposit), None),
            Self::Charged { amount, fee, .. }
            | Self::PeriodEarned { amount, fee, .. }
            | Self::UsageEarned { amount, fee, .. } => (Some(*amount), Some(*fee)),
            Self::ContractClosed { refund, .. } => (Some(*refund), None),
            Self::BatchSettled { total, .. } => (Some(*total), None),
            Self::OverchargeProven { refunded, .. } => (Some(*refunded), None),
            _ => (None, None),
        }
    }

    /// The content-store CID (or the did) the event carries.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::ConfigUpdated { cid, .. } | Self::CredentialAnchored { cid, .. } => {
                Some(cid.as_str())
            }
            Self::ContractOpened { terms_cid, .. } => Some(terms_cid.as_str()),
            Self::TermsSigned { signatures_cid, .. } => Some(signatures_cid.as_str()),
            Self::BatchSettled { records_cid, .. } => Some(records_cid.as_str()),
            Self::ParticipantRegistered { did, .. } => Some(did.as_str()),
            _ => None,
        }
    }
}

fn role_signature(name: &str) -> B256 {
    alloy::primitives::keccak256(format!("{name}(bytes32,address,address)"))
}

fn role_topics(topics: &[B256]) -> Option<(B256, Address, Address)> {
    match topics {
        [_, role, account, sender] => Some((
            *role,
            Address::from_word(*account),
            Address::from_word(*sender),
        )),
        _ => None,
    }
}

/// topic0 → event name, from each contract's ABI (the committed artifacts).
fn event_names(source: Source) -> &'static HashMap<B256, &'static str> {
    static TABLES: OnceLock<HashMap<Source, HashMap<B256, &'static str>>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        Source::ALL
            .into_iter()
            .map(|s| (s, abi_events(s.artifact())))
            .collect()
    });
    &tables[&source]
}

fn abi_events(artifact: &'static str) -> HashMap<B256, &'static str> {
    #[derive(serde::Deserialize)]
    struct Artifact {
        abi: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        inputs: Vec<Input>,
    }
    #[derive(serde::Deserialize)]
    struct Input {
        #[serde(rename = "type")]
        kind: String,
    }
    // The artifacts are committed and checked by the build: a parse failure is a build defect.
    let a: Artifact = serde_json::from_str(artifact).expect("committed artifact is valid JSON");
    a.abi
        .into_iter()
        .filter(|i| i.kind == "event")
        .map(|i| {
            let types: Vec<&str> = i.inputs.iter().map(|x| x.kind.as_str()).collect();
            let sig = format!("{}({})", i.name, types.join(","));
            let name: &'static str = Box::leak(i.name.into_boxed_str());
            (alloy::primitives::keccak256(sig), name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolEvent;

    #[test]
    fn decodes_typed_events_and_names_the_rest() {
        let e = Marketplace::ToppedUp {
            contractId: B256::repeat_byte(7),
            by: Address::repeat_byte(1),
            amount: U256::from(5),
            escrow: U256::from(9),
        };
        let log = e.encode_log_data();
        let d = LedgerEvent::decode(Source::Marketplace, log.topics(), &log.data).unwrap();
        assert_eq!(d.name(), "ToppedUp");
        assert_eq!(d.contract(), Some(B256::repeat_byte(7)));
        assert_eq!(d.amounts(), (Some(U256::from(5)), None));

        let fee = Marketplace::FeeChanged { feeBps: 250 }.encode_log_data();
        let d = LedgerEvent::decode(Source::Marketplace, fee.topics(), &fee.data).unwrap();
        assert_eq!(d, LedgerEvent::Other { name: "FeeChanged" });

        let role = Marketplace::RoleGranted {
            role: B256::repeat_byte(3),
            account: Address::repeat_byte(4),
            sender: Address::repeat_byte(5),
        }
        .encode_log_data();
        let d = LedgerEvent::decode(Source::Marketplace, role.topics(), &role.data).unwrap();
        assert_eq!(d.name(), "RoleGranted");
        assert_eq!(
            d.accounts(),
            (Some(Address::repeat_byte(4)), Some(Address::repeat_byte(5)))
        );
    }

    #[test]
    fn a_log_of_another_contract_is_refused() {
        let e = Marketplace::ToppedUp {
            contractId: B256::ZERO,
            by: Address::ZERO,
            amount: U256::ZERO,
            escrow: U256::ZERO,
        }
        .encode_log_data();
        let err = LedgerEvent::decode(Source::Credentials, e.topics(), &e.data).unwrap_err();
        assert!(err.to_string().contains("CredentialRegistry"), "{err}");
    }

    #[test]
    fn a_period_charge_has_no_batch() {
        let charge = |reference| LedgerEvent::Charged {
            contract: B256::ZERO,
            reference,
            amount: U256::from(1),
            fee: U256::ZERO,
            escrow: U256::ZERO,
        };
        assert_eq!(charge(period_ref()).batch(), None);
        let b = B256::repeat_byte(9);
        assert_eq!(charge(b).batch(), Some(b));
    }
}
