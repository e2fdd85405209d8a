//! The terms a consumer authorises to open a contract: what the broker offers with a reservation,
//! what the consumer signs (EIP-712 `OpenContract` and an EIP-2612 permit for the deposit), and
//! the check that the signatures are the consumer account's.

use alloy::primitives::{Address, Signature, B256, U256};
use alloy::sol_types::Eip712Domain;
use serde::{Deserialize, Serialize};

use crate::eip712::{self, OpenContract, Permit, UsagePrices};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseTerms {
    pub chain_id: u64,
    pub marketplace: Address,
    pub token: Address,
    pub contract_id: B256,
    pub consumer: Address,
    pub provider: Address,
    pub terms_hash: B256,
    pub terms_cid: String,
    pub deposit: U256,
    pub period_price: U256,
    pub period: u64,
    /// The pay-per-use unit prices (all zero when the plan has none).
    pub prices: Prices,
    /// At most this much usage is charged per `cap_window` seconds (0 and 0: no usage charges).
    pub usage_cap: U256,
    pub cap_window: u64,
    /// Unix seconds after which neither authorisation can be used.
    pub deadline: U256,
    /// The consumer's token nonce its permit must carry.
    pub permit_nonce: U256,
}

/// Unit prices in credit base units (the serialisable twin of `eip712::UsagePrices`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prices {
    pub cpu_core_hour: U256,
    pub memory_gib_hour: U256,
    pub gpu_hour: U256,
    pub network_gb: U256,
    pub data_access: U256,
    pub gpu_record_fee: U256,
}

impl From<&Prices> for UsagePrices {
    fn from(p: &Prices) -> Self {
        Self {
            cpuCoreHour: p.cpu_core_hour,
            memoryGibHour: p.memory_gib_hour,
            gpuHour: p.gpu_hour,
            networkGb: p.network_gb,
            dataAccess: p.data_access,
            gpuRecordFee: p.gpu_record_fee,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("the {what} signature is not a 65-byte secp256k1 signature")]
    Malformed { what: &'static str },
    #[error("the {what} signature was made by {signer}, not by the consumer account {consumer}")]
    WrongSigner {
        what: &'static str,
        signer: Address,
        consumer: Address,
    },
}

impl PurchaseTerms {
    pub fn marketplace_domain(&self) -> Eip712Domain {
        eip712::marketplace_domain(self.chain_id, self.marketplace)
    }

    pub fn token_domain(&self) -> Eip712Domain {
        eip712::token_domain(self.chain_id, self.token)
    }

    pub fn open_message(&self) -> OpenContract {
        OpenContract {
            contractId: self.contract_id,
            consumer: self.consumer,
            provider: self.provider,
            termsHash: self.terms_hash,
            termsCid: self.terms_cid.clone(),
            deposit: self.deposit,
            periodPrice: self.period_price,
            period: self.period,
            prices: UsagePrices::from(&self.prices),
            usageCap: self.usage_cap,
            capWindow: self.cap_window,
            deadline: self.deadline,
        }
    }

    /// The request `Marketplace.open`/`openWithPermit` takes for these terms.
    pub fn open_request(&self) -> crate::bindings::Marketplace::OpenRequest {
        self.open_message().into()
    }

    pub fn permit_message(&self) -> Permit {
        Permit {
            owner: self.consumer,
            spender: self.marketplace,
            value: self.deposit,
            nonce: self.permit_nonce,
            deadline: self.deadline,
        }
    }

    /// The digests the consumer signs: (open, permit).
    pub fn digests(&self) -> (B256, B256) {
        (
            eip712::digest(&self.open_message(), &self.marketplace_domain()),
            eip712::digest(&self.permit_message(), &self.token_domain()),
        )
    }

    /// Checks both signatures are the consumer account's; returns them parsed.
    pub fn verify(
        &self,
        open_signature: &[u8],
        permit_signature: &[u8],
    ) -> Result<(Signature, Signature), AuthorizationError> {
        let (open_digest, permit_digest) = self.digests();
        let check = |what, bytes: &[u8], digest: B256| {
            let sig =
                Signature::try_from(bytes).map_err(|_| AuthorizationError::Malformed { what })?;
            let signer = sig
                .recover_address_from_prehash(&digest)
                .map_err(|_| AuthorizationError::Malformed { what })?;
            if signer != self.consumer {
                return Err(AuthorizationError::WrongSigner {
                    what,
                    signer,
                    consumer: self.consumer,
                });
            }
            Ok(sig)
        };
        Ok((
            check("open", open_signature, open_digest)?,
            check("permit", permit_signature, permit_digest)?,
        ))
    }
}
