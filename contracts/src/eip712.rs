//! The EIP-712 messages the contracts verify, with their domains. Signing one of these is how a
//! participant authorises the broker to act for it on chain.

use alloy::primitives::{Address, B256, U256};
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolStruct};

sol! {
    /// The pay-per-use unit prices a consumer signs (credit base units): per core-hour, GiB-hour,
    /// GPU-hour, GB of traffic, data access, and the fixed cost a record with GPU use adds.
    #[derive(Debug, PartialEq, Eq, Default)]
    struct UsagePrices {
        uint256 cpuCoreHour;
        uint256 memoryGibHour;
        uint256 gpuHour;
        uint256 networkGb;
        uint256 dataAccess;
        uint256 gpuRecordFee;
    }

    /// A consumer's authorisation to open a contract and pull `deposit` into escrow; usage is
    /// charged at most `usageCap` per `capWindow` seconds, at `prices`.
    #[derive(Debug, PartialEq, Eq)]
    struct OpenContract {
        bytes32 contractId;
        address consumer;
        address provider;
        bytes32 termsHash;
        string termsCid;
        uint256 deposit;
        uint256 periodPrice;
        uint64 period;
        UsagePrices prices;
        uint256 usageCap;
        uint64 capWindow;
        uint256 deadline;
    }

    /// A consumer's authorisation to add `amount` to a contract's escrow.
    #[derive(Debug, PartialEq, Eq)]
    struct TopUp {
        bytes32 contractId;
        uint256 amount;
        uint256 nonce;
        uint256 deadline;
    }

    /// An account's consent to be linked to a DID with a role.
    #[derive(Debug, PartialEq, Eq)]
    struct Link {
        string did;
        address account;
        uint8 role;
        uint256 nonce;
        uint256 deadline;
    }

    /// A provider's consent to record a new configuration CID.
    #[derive(Debug, PartialEq, Eq)]
    struct SetConfig {
        address account;
        string cid;
        uint256 nonce;
        uint256 deadline;
    }

    /// EIP-2612 permit, as the credit token verifies it.
    #[derive(Debug, PartialEq, Eq)]
    struct Permit {
        address owner;
        address spender;
        uint256 value;
        uint256 nonce;
        uint256 deadline;
    }
}

fn domain(name: &'static str, chain_id: u64, verifying_contract: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(name.into()),
        Some("1".into()),
        Some(U256::from(chain_id)),
        Some(verifying_contract),
        None,
    )
}

pub fn marketplace_domain(chain_id: u64, marketplace: Address) -> Eip712Domain {
    domain("Mercato Marketplace", chain_id, marketplace)
}

pub fn registry_domain(chain_id: u64, registry: Address) -> Eip712Domain {
    domain("Mercato ParticipantRegistry", chain_id, registry)
}

pub fn token_domain(chain_id: u64, token: Address) -> Eip712Domain {
    domain("Mercato Credit", chain_id, token)
}

/// The digest a signer signs for `message` under `domain`.
pub fn digest<T: SolStruct>(message: &T, domain: &Eip712Domain) -> B256 {
    message.eip712_signing_hash(domain)
}

/// Signs `message` under `domain` with an account's key (65 bytes: r, s, v).
pub fn sign<T: SolStruct>(
    signer: &alloy::signers::local::PrivateKeySigner,
    message: &T,
    domain: &Eip712Domain,
) -> Result<alloy::primitives::Bytes, alloy::signers::Error> {
    use alloy::signers::SignerSync;
    let signature = signer.sign_hash_sync(&digest(message, domain))?;
    Ok(alloy::primitives::Bytes::from(
        signature.as_bytes().to_vec(),
    ))
}

/// The request `Marketplace.open` takes for a signed `OpenContract`.
impl From<OpenContract> for crate::bindings::Marketplace::OpenRequest {
    fn from(m: OpenContract) -> Self {
        Self {
            contractId: m.contractId,
            consumer: m.consumer,
            provider: m.provider,
            termsHash: m.termsHash,
            termsCid: m.termsCid,
            deposit: m.deposit,
            periodPrice: m.periodPrice,
            period: m.period,
            prices: (&m.prices).into(),
            usageCap: m.usageCap,
            capWindow: m.capWindow,
            deadline: m.deadline,
        }
    }
}

/// The same prices as a challenge takes them.
impl From<&UsagePrices> for crate::bindings::UsageSettlement::Prices {
    fn from(p: &UsagePrices) -> Self {
        Self {
            cpuCoreHour: p.cpuCoreHour,
            memoryGibHour: p.memoryGibHour,
            gpuHour: p.gpuHour,
            networkGb: p.networkGb,
            dataAccess: p.dataAccess,
            gpuRecordFee: p.gpuRecordFee,
        }
    }
}

impl From<&UsagePrices> for crate::bindings::Marketplace::UsagePrices {
    fn from(p: &UsagePrices) -> Self {
        Self {
            cpuCoreHour: p.cpuCoreHour,
            memoryGibHour: p.memoryGibHour,
            gpuHour: p.gpuHour,
            networkGb: p.networkGb,
            dataAccess: p.dataAccess,
            gpuRecordFee: p.gpuRecordFee,
        }
    }
}
