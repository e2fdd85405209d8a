//! The broker's link to the ledger: the chain client for its relayer account and the deployment.
//! What the chain answers is decoded strictly: a status or an amount the contracts cannot hold is
//! an error naming it, never a default.

use alloy::primitives::{Address, Bytes, Signature, B256, U256};
use alloy::providers::DynProvider;
use alloy::sol_types::Eip712Domain;
use api::contracts::{ChainAgreement, ChainStatus};
use api::ledger::{ContractAddresses, LedgerStatus};
use api::{ContentId, ContractId, Credits, Hash32};
pub use contracts::bindings::Marketplace;
use contracts::bindings::{CredentialRegistry, CreditToken, ParticipantRegistry, UsageSettlement};
use contracts::eip712;
use ledger::{ChainClient, ClientError, Deployment};

/// A movement of a contract's credits, from the Marketplace's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMove {
    /// The block's time.
    pub at: u64,
    pub tx: B256,
    pub kind: MoveKind,
    pub amount: Credits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveKind {
    /// The deposit, into escrow.
    Opened,
    ToppedUp,
    /// A reserved period charged in advance.
    Period,
    /// A usage charge of a settlement batch.
    Usage {
        batch: B256,
    },
    /// The unused share of a prepaid period, back to escrow.
    PeriodRefunded,
    /// A usage charge of a batch proven an overcharge, given back.
    Overcharge {
        batch: B256,
    },
    /// The escrow returned to the consumer.
    Closed,
}

impl MoveKind {
    /// The name a charges table stores.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::ToppedUp => "topup",
            Self::Period => "period",
            Self::Usage { .. } => "usage",
            Self::PeriodRefunded => "unused",
            Self::Overcharge { .. } => "overcharge",
            Self::Closed => "closed",
        }
    }

    /// The settlement batch it belongs to, if any.
    pub fn batch(&self) -> Option<B256> {
        match self {
            Self::Usage { batch } | Self::Overcharge { batch } => Some(*batch),
            _ => None,
        }
    }

    pub fn parse(name: &str, batch: Option<B256>) -> Option<Self> {
        Some(match (name, batch) {
            ("opened", None) => Self::Opened,
            ("topup", None) => Self::ToppedUp,
            ("period", None) => Self::Period,
            ("usage", Some(batch)) => Self::Usage { batch },
            ("unused", None) => Self::PeriodRefunded,
            ("overcharge", Some(batch)) => Self::Overcharge { batch },
            ("closed", None) => Self::Closed,
            _ => return None,
        })
    }
}

#[derive(Clone)]
pub struct LedgerLink {
    pub client: ChainClient,
    pub deployment: Deployment,
}

/// Why a chain call failed: the node (unreachable, refused, reverted) or an answer the contracts
/// cannot give.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the chain answered {what} = {value}, which the contracts cannot hold")]
    Unexpected { what: &'static str, value: String },
}

impl ChainError {
    /// The node refused the transaction as it would revert (a refusal, not an outage).
    pub fn is_revert(&self) -> bool {
        matches!(self, Self::Client(ClientError::Reverted { .. }))
    }

    /// Why the chain refused, in words a participant can act on: the token's and the
    /// marketplace's own errors; the node's words for anything else.
    pub fn refusal(&self) -> String {
        self.named_refusal().unwrap_or_else(|| self.to_string())
    }

    fn named_refusal(&self) -> Option<String> {
        use contracts::Marketplace::MarketplaceErrors as M;
        use CreditToken::CreditTokenErrors as T;
        let Self::Client(c) = self else {
            return None;
        };
        let human = |v: U256| {
            u128::try_from(v)
                .map_or_else(|_| v.to_string(), |u| Credits::from_base_units(u).human())
        };
        if let Some(t) = c.decode_revert::<T>() {
            return match t {
                T::ERC20InsufficientAllowance(a) => Some(format!(
                    "the {} credits could not be taken: their permit was no longer valid (the account signed another purchase or top-up meanwhile, which used the permit's nonce)",
                    human(a.needed)
                )),
                T::ERC20InsufficientBalance(b) => Some(format!(
                    "the account holds {} credits, less than the {} asked",
                    human(b.balance),
                    human(b.needed)
                )),
                _ => None,
            };
        }
        Some(match c.decode_revert::<M>()? {
            M::Expired(_) => "the signatures' deadline passed".into(),
            M::BadSignature(_) => "a signature does not verify on chain".into(),
            M::InvalidTerms(_) => "the chain found the terms invalid".into(),
            M::NotConsumer(_) | M::NotProvider(_) => {
                "an account is not registered on chain for its role".into()
            }
            M::InsufficientEarnings(e) => format!(
                "the account's earnings are {} credits, less than the {} asked",
                human(e.available),
                human(e.amount)
            ),
            _ => return None,
        })
    }
}

/// An amount of credits from the chain.
pub fn credits(what: &'static str, v: U256) -> Result<Credits, ChainError> {
    u128::try_from(v)
        .map(Credits::from_base_units)
        .map_err(|_| ChainError::Unexpected {
            what,
            value: v.to_string(),
        })
}

fn addresses(c: &ledger::deployment::ContractAddresses) -> ContractAddresses {
    ContractAddresses {
        credit_token: c.credit_token,
        participant_registry: c.participant_registry,
        marketplace: c.marketplace,
        billing_models: c.billing_models,
        usage_settlement: c.usage_settlement,
        credential_registry: c.credential_registry,
    }
}

impl LedgerLink {
    /// The chain and deployment as `broker` (the broker's did) serves them.
    pub async fn status(&self, broker: api::Did) -> Result<LedgerStatus, ChainError> {
        Ok(LedgerStatus {
            chain_id: self.deployment.chain_id,
            rpc_url: self.client.url().to_string(),
            block_number: self.client.block_number().await?,
            deployment_block: self.deployment.deployment_block,
            broker_account: self.client.address(),
            contracts: addresses(&self.deployment.contracts),
            broker_did: broker,
        })
    }

    /// Names this deployment in signed login and registration messages.
    pub fn audience(&self) -> String {
        identity::audience(
            self.deployment.chain_id,
            &self.deployment.contracts.marketplace.to_string(),
        )
    }
}

/// The consumer's authorisations the broker relays to open a contract: its EIP-712 `OpenContract`
/// signature and an EIP-2612 permit for the deposit, so the consumer needs no gas.
#[derive(Debug, Clone)]
pub struct OpenAuthorization {
    pub request: Marketplace::OpenRequest,
    pub open_signature: Bytes,
    pub permit_deadline: U256,
    pub permit_signature: Signature,
}

impl LedgerLink {
    fn registry(&self) -> ParticipantRegistry::ParticipantRegistryInstance<&DynProvider> {
        ParticipantRegistry::new(
            self.deployment.contracts.participant_registry,
            self.client.provider(),
        )
    }

    fn marketplace(&self) -> Marketplace::MarketplaceInstance<&DynProvider> {
        Marketplace::new(
            self.deployment.contracts.marketplace,
            self.client.provider(),
        )
    }

    pub fn registry_domain(&self) -> Eip712Domain {
        eip712::registry_domain(
            self.deployment.chain_id,
            self.deployment.contracts.participant_registry,
        )
    }

    pub fn marketplace_domain(&self) -> Eip712Domain {
        eip712::marketplace_domain(
            self.deployment.chain_id,
            self.deployment.contracts.marketplace,
        )
    }

    pub fn token_domain(&self) -> Eip712Domain {
        eip712::token_domain(
            self.deployment.chain_id,
            self.deployment.contracts.credit_token,
        )
    }

    fn token(&self) -> CreditToken::CreditTokenInstance<&DynProvider> {
        CreditToken::new(
            self.deployment.contracts.credit_token,
            self.client.provider(),
        )
    }

    fn read_err(&self, e: alloy::contract::Error) -> ChainError {
        // A view that reverts answered: the chain refused the question, it is not unavailable.
        if let Some(data) = e.as_revert_data() {
            return ChainError::Client(ClientError::Reverted {
                reason: e.to_string(),
                data: Some(data),
            });
        }
        ChainError::Client(ClientError::Unreachable {
            url: self.client.url().to_string(),
            reason: e.to_string(),
        })
    }

    /// The registry nonce the account's next `Link` or `SetConfig` signature must carry.
    pub async fn registry_nonce(&self, account: Address) -> Result<U256, ChainError> {
        self.registry()
            .nonces(account)
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    /// The token nonce the account's next permit must carry.
    pub async fn permit_nonce(&self, account: Address) -> Result<U256, ChainError> {
        self.token()
            .nonces(account)
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    pub async fn credit_balance(&self, account: Address) -> Result<Credits, ChainError> {
        let v = self
            .token()
            .balanceOf(account)
            .call()
            .await
            .map_err(|e| self.read_err(e))?;
        credits("balanceOf", v)
    }

    /// What the marketplace owes an account (released earnings, withdrawable).
    pub async fn earnings(&self, account: Address) -> Result<Credits, ChainError> {
        let v = self
            .marketplace()
            .earnings(account)
            .call()
            .await
            .map_err(|e| self.read_err(e))?;
        credits("earnings", v)
    }

    /// What the registry holds of an account (an empty did and role 0 when it is not linked).
    async fn participant(
        &self,
        account: Address,
    ) -> Result<ParticipantRegistry::Participant, ChainError> {
        self.registry()
            .participant(account)
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    /// The did an account is linked to on chain, with its role number (0 when none).
    pub async fn linked(&self, account: Address) -> Result<(String, u8), ChainError> {
        let p = self.participant(account).await?;
        Ok((p.did, p.role))
    }

    /// The configuration an account has on chain: (version, CID); version 0 when none.
    pub async fn config_of(&self, account: Address) -> Result<(u64, String), ChainError> {
        let p = self.participant(account).await?;
        Ok((p.configVersion, p.configCid))
    }

    /// Links `did` to `account` with `role`, relaying the account's `Link` signature.
    pub async fn link(
        &self,
        did: &str,
        account: Address,
        role: u8,
        deadline: U256,
        signature: Bytes,
    ) -> Result<B256, ChainError> {
        let call = ParticipantRegistry::registerCall {
            did: did.to_string(),
            account,
            role,
            deadline,
            signature,
        };
        let receipt = self
            .client
            .send_call(self.deployment.contracts.participant_registry, &call)
            .await?;
        Ok(receipt.transaction_hash)
    }

    /// Records a provider's new configuration CID, relaying its `SetConfig` signature.
    pub async fn set_config(
        &self,
        account: Address,
        cid: &str,
        deadline: U256,
        signature: Bytes,
    ) -> Result<(B256, u64), ChainError> {
        let call = ParticipantRegistry::setConfigForCall {
            account,
            cid: cid.to_string(),
            deadline,
            signature,
        };
        let receipt = self
            .client
            .send_call(self.deployment.contracts.participant_registry, &call)
            .await?;
        let version = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| {
                l.log_decode::<ParticipantRegistry::ConfigUpdated>()
                    .ok()
                    .map(|e| e.inner.data.version)
            })
            .ok_or(ChainError::Unexpected {
                what: "setConfig receipt",
                value: "no ConfigUpdated event".into(),
            })?;
        Ok((receipt.transaction_hash, version))
    }

    /// Opens the contract with the consumer's authorisations (one transaction: permit + open),
    /// logging where both parties' signatures of the document are kept.
    pub async fn open(
        &self,
        auth: &OpenAuthorization,
        signatures_cid: &ContentId,
    ) -> Result<B256, ChainError> {
        let sig = &auth.permit_signature;
        let call = Marketplace::openWithPermitCall {
            req: auth.request.clone(),
            consumerSig: auth.open_signature.clone(),
            signaturesCid: signatures_cid.to_string(),
            permitDeadline: auth.permit_deadline,
            v: 27 + u8::from(sig.v()),
            r: sig.r().into(),
            s: sig.s().into(),
        };
        let receipt = self
            .client
            .send_call(self.deployment.contracts.marketplace, &call)
            .await?;
        Ok(receipt.transaction_hash)
    }

    pub async fn agreement(&self, contract_id: ContractId) -> Result<ChainAgreement, ChainError> {
        let a = self
            .marketplace()
            .agreement(contract_id.0)
            .call()
            .await
            .map_err(|e| self.read_err(e))?;
        Ok(ChainAgreement {
            status: ChainStatus::from_number(a.status).ok_or(ChainError::Unexpected {
                what: "agreement.status",
                value: a.status.to_string(),
            })?,
            consumer: a.consumer,
            provider: a.provider,
            escrow: credits("agreement.escrow", a.escrow)?,
            charged: Credits::from_base_units(a.charged),
            terms_hash: Hash32(a.termsHash),
            terms_cid: a.termsCid,
            period: a.period,
            period_price: credits("agreement.periodPrice", a.periodPrice)?,
            next_charge_at: a.nextChargeAt,
            fee_bps: a.feeBps,
            held: credits("agreement.held", a.held)?,
            usage_cap: Credits::from_base_units(a.usageCap),
            cap_window: a.capWindow,
            window_start: a.windowStart,
            window_charged: Credits::from_base_units(a.windowCharged),
            challenge_window: a.challengeWindow,
        })
    }

    /// Every log of the six contracts in blocks `from..=to`, oldest first.
    pub async fn all_logs(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<alloy::rpc::types::Log>, ChainError> {
        let addresses: Vec<Address> = self.sources().iter().map(|(a, _)| *a).collect();
        Ok(self.client.logs(&addresses, from, to).await?)
    }

    /// Each contract's address with the name its events are decoded under.
    pub fn sources(&self) -> [(Address, contracts::events::Source); 6] {
        use contracts::events::Source;
        let c = &self.deployment.contracts;
        [
            (c.credit_token, Source::Token),
            (c.participant_registry, Source::Registry),
            (c.marketplace, Source::Marketplace),
            (c.billing_models, Source::Billing),
            (c.usage_settlement, Source::Settlement),
            (c.credential_registry, Source::Credentials),
        ]
    }

    /// A block's header (none past the head).
    async fn header(&self, number: u64) -> Result<Option<alloy::rpc::types::Header>, ChainError> {
        use alloy::providers::Provider;
        let block = self
            .client
            .provider()
            .get_block_by_number(number.into())
            .await
            .map_err(|e| {
                ChainError::Client(ClientError::Unreachable {
                    url: self.client.url().to_string(),
                    reason: e.to_string(),
                })
            })?;
        Ok(block.map(|b| b.header))
    }

    /// A block's time.
    pub async fn block_time(&self, number: u64) -> Result<u64, ChainError> {
        let header = self.header(number).await?.ok_or(ChainError::Unexpected {
            what: "block of a log",
            value: number.to_string(),
        })?;
        Ok(header.timestamp)
    }

    /// A block's hash (none past the head).
    pub async fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        Ok(self.header(number).await?.map(|h| h.hash))
    }

    /// Closes the contract (the broker may at any time) and returns the refund paid back.
    pub async fn close(&self, contract_id: ContractId) -> Result<(B256, Credits), ChainError> {
        let receipt = self
            .client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::closeCall {
                    contractId: contract_id.0,
                },
            )
            .await?;
        let refund = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| {
                l.log_decode::<Marketplace::ContractClosed>()
                    .ok()
                    .map(|e| e.inner.data.refund)
            })
            .ok_or(ChainError::Unexpected {
                what: "close receipt",
                value: "no ContractClosed event".into(),
            })?;
        Ok((receipt.transaction_hash, credits("refund", refund)?))
    }
}

pub use contracts::usage::skipped_charges;

impl LedgerLink {
    /// Anchors a credential: its hash and CID, with the broker's account as issuer.
    pub async fn anchor_credential(&self, hash: B256, cid: &str) -> Result<B256, ChainError> {
        let call = CredentialRegistry::anchorCall {
            credentialHash: hash,
            cid: cid.to_string(),
        };
        let receipt = self
            .client
            .send_call(self.deployment.contracts.credential_registry, &call)
            .await?;
        Ok(receipt.transaction_hash)
    }

    /// Revokes a credential's anchor; `reason` goes on chain as up to 32 bytes of text.
    pub async fn revoke_credential(&self, hash: B256, reason: &str) -> Result<B256, ChainError> {
        let mut r = [0u8; 32];
        let n = reason.len().min(32);
        r[..n].copy_from_slice(&reason.as_bytes()[..n]);
        let call = CredentialRegistry::revokeCall {
            credentialHash: hash,
            reason: B256::from(r),
        };
        let receipt = self
            .client
            .send_call(self.deployment.contracts.credential_registry, &call)
            .await?;
        Ok(receipt.transaction_hash)
    }

    /// The anchor of `hash`: none, or whether it was revoked.
    pub async fn credential_anchor(&self, hash: B256) -> Result<Option<bool>, ChainError> {
        let a = CredentialRegistry::new(
            self.deployment.contracts.credential_registry,
            self.client.provider(),
        )
        .lookup(hash)
        .call()
        .await;
        match a {
            Ok(a) => Ok(Some(a.revokedAt != 0)),
            // `lookup` reverts (UnknownCredential) for a hash never anchored.
            Err(e) if e.as_revert_data().is_some() => Ok(None),
            Err(alloy::contract::Error::TransportError(e)) if e.to_string().contains("revert") => {
                Ok(None)
            }
            Err(e) => Err(self.read_err(e)),
        }
    }

    fn settlement(&self) -> UsageSettlement::UsageSettlementInstance<&DynProvider> {
        UsageSettlement::new(
            self.deployment.contracts.usage_settlement,
            self.client.provider(),
        )
    }

    /// Settles a batch: one transaction charging every contract of it from its escrow.
    pub async fn settle(
        &self,
        batch_id: B256,
        root: B256,
        records_cid: &str,
        record_count: u32,
        charges: &[(B256, U256)],
    ) -> Result<alloy::rpc::types::TransactionReceipt, ChainError> {
        let call = UsageSettlement::settleCall {
            batchId: batch_id,
            merkleRoot: root,
            recordsCid: records_cid.to_string(),
            recordCount: record_count,
            contractIds: charges.iter().map(|(c, _)| *c).collect(),
            amounts: charges.iter().map(|(_, a)| *a).collect(),
        };
        Ok(self
            .client
            .send_call(self.deployment.contracts.usage_settlement, &call)
            .await?)
    }

    /// Whether the chain has settled `batch_id`.
    pub async fn batch_settled(&self, batch_id: B256) -> Result<bool, ChainError> {
        let b = self
            .settlement()
            .batch(batch_id)
            .call()
            .await
            .map(|b| b.settledAt != 0);
        match b {
            Ok(settled) => Ok(settled),
            // `batch` reverts for a batch the chain does not know.
            Err(alloy::contract::Error::TransportError(e)) if e.to_string().contains("revert") => {
                Ok(false)
            }
            Err(e) => Err(self.read_err(e)),
        }
    }

    /// The chain's own check that the leaf (`record_hash`, `amount`) sits under `contract` in
    /// the batch; with the contract's sum of leaves.
    pub async fn verify_record(
        &self,
        batch_id: B256,
        contract: B256,
        record_hash: B256,
        amount: U256,
        record_path: &[contracts::merkle::Step],
        contract_path: &[contracts::merkle::Step],
    ) -> Result<(bool, U256), ChainError> {
        let r = self
            .settlement()
            .verifyRecord(
                batch_id,
                contract,
                record_hash,
                amount,
                record_path.iter().map(Into::into).collect(),
                contract_path.iter().map(Into::into).collect(),
            )
            .call()
            .await
            .map_err(|e| self.read_err(e))?;
        Ok((r.ok, r.contractSum))
    }

    /// A batch's usage charge on a contract: (charged, still locked, releasable at); charged is
    /// zero when the batch skipped the contract.
    pub async fn usage_charge(
        &self,
        batch_id: B256,
        contract: ContractId,
    ) -> Result<(Credits, Credits, u64), ChainError> {
        let u = self
            .marketplace()
            .usageCharge(batch_id, contract.0)
            .call()
            .await
            .map_err(|e| self.read_err(e))?;
        Ok((
            credits("usageCharge.charged", U256::from(u.charged))?,
            credits("usageCharge.open", U256::from(u.open))?,
            u.releasableAt,
        ))
    }

    /// Earns a batch's charges on `contracts` whose challenge window ended.
    pub async fn release(
        &self,
        batch_id: B256,
        contracts: &[ContractId],
    ) -> Result<B256, ChainError> {
        let receipt = self
            .client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::releaseCall {
                    r#ref: batch_id,
                    contractIds: contracts.iter().map(|c| c.0).collect(),
                },
            )
            .await?;
        Ok(receipt.transaction_hash)
    }

    /// The broker's fee on charges, in basis points.
    pub async fn fee_bps(&self) -> Result<u16, ChainError> {
        self.marketplace()
            .feeBps()
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    /// Charges a reserved contract's next period when due; the chain suspends the contract
    /// itself when its escrow cannot pay. Returns whether it charged.
    pub async fn charge_period(&self, contract_id: ContractId) -> Result<bool, ChainError> {
        let receipt = self
            .client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::chargePeriodCall {
                    contractId: contract_id.0,
                },
            )
            .await?;
        Ok(receipt
            .inner
            .logs()
            .iter()
            .any(|l| l.log_decode::<Marketplace::Charged>().is_ok()))
    }

    pub async fn suspend(&self, contract_id: ContractId, reason: &str) -> Result<(), ChainError> {
        let mut r = [0u8; 32];
        let n = reason.len().min(32);
        r[..n].copy_from_slice(&reason.as_bytes()[..n]);
        self.client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::suspendCall {
                    contractId: contract_id.0,
                    reason: B256::from(r),
                },
            )
            .await
            .map(|_| ())
            .map_err(Into::into)
    }

    pub async fn resume(&self, contract_id: ContractId) -> Result<(), ChainError> {
        self.client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::resumeCall {
                    contractId: contract_id.0,
                },
            )
            .await
            .map(|_| ())
            .map_err(Into::into)
    }

    /// The consumer's next top-up signature nonce.
    pub async fn topup_nonce(&self, consumer: Address) -> Result<U256, ChainError> {
        self.marketplace()
            .nonces(consumer)
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    /// Adds `amount` to a contract's escrow with the consumer's permit and TopUp signatures.
    pub async fn top_up(
        &self,
        contract_id: ContractId,
        consumer: Address,
        amount: Credits,
        deadline: u64,
        permit: Signature,
        topup_signature: Bytes,
    ) -> Result<B256, ChainError> {
        let (amount, deadline) = (U256::from(amount.base_units()), U256::from(deadline));
        self.client
            .send_call(
                self.deployment.contracts.credit_token,
                &CreditToken::permitCall {
                    owner: consumer,
                    spender: self.deployment.contracts.marketplace,
                    value: amount,
                    deadline,
                    v: 27 + u8::from(permit.v()),
                    r: permit.r().into(),
                    s: permit.s().into(),
                },
            )
            .await?;
        let receipt = self
            .client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::topUpCall {
                    contractId: contract_id.0,
                    amount,
                    deadline,
                    consumerSig: topup_signature,
                },
            )
            .await?;
        Ok(receipt.transaction_hash)
    }

    /// The latest block's timestamp: the time the contracts go by.
    pub async fn chain_time(&self) -> Result<u64, ChainError> {
        use alloy::providers::Provider;
        let block = self
            .client
            .provider()
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| {
                ChainError::Client(ClientError::Unreachable {
                    url: self.client.url().to_string(),
                    reason: e.to_string(),
                })
            })?;
        block
            .map(|b| b.header.timestamp)
            .ok_or(ChainError::Unexpected {
                what: "latest block",
                value: "none".into(),
            })
    }

    /// A region's cost data as BillingModels has it.
    pub async fn region(&self, name: &str) -> Result<contracts::billing::Region, ChainError> {
        let r = contracts::BillingModels::new(
            self.deployment.contracts.billing_models,
            self.client.provider(),
        )
        .region(name.to_string())
        .call()
        .await
        .map_err(|e| self.read_err(e))?;
        Ok(contracts::billing::Region {
            high_demand: r.highDemand,
            high_demand_cost: r.highDemandCost,
            cpu_cost: r.cpuCost,
            memory_cost: r.memoryCost,
            gpu_cost: r.gpuCost,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::SolError;
    use contracts::Marketplace;

    fn reverted(data: Vec<u8>) -> ChainError {
        ClientError::Reverted {
            reason: "custom error".into(),
            data: Some(data.into()),
        }
        .into()
    }

    #[test]
    fn a_refusal_is_said_in_words() {
        let spent = CreditToken::ERC20InsufficientAllowance {
            spender: Address::ZERO,
            allowance: U256::ZERO,
            needed: U256::from(150_000_000u64),
        }
        .abi_encode();
        let why = reverted(spent).refusal();
        assert!(
            why.starts_with("the 1.5 credits could not be taken"),
            "{why}"
        );
        assert!(why.contains("permit was no longer valid"), "{why}");
        let poor = CreditToken::ERC20InsufficientBalance {
            sender: Address::ZERO,
            balance: U256::from(100_000_000u64),
            needed: U256::from(200_000_000u64),
        }
        .abi_encode();
        assert_eq!(
            reverted(poor).refusal(),
            "the account holds 1 credits, less than the 2 asked"
        );
        let late = Marketplace::Expired {
            deadline: U256::from(1),
        }
        .abi_encode();
        assert_eq!(reverted(late).refusal(), "the signatures' deadline passed");
        // Anything else keeps the node's own words.
        let unknown = reverted(vec![1, 2, 3, 4]);
        assert_eq!(unknown.refusal(), unknown.to_string());
    }
}
