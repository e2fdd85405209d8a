//! The broker's link to the ledger: the chain client for its relayer account and the deployment.

use alloy::primitives::{Address, Bytes, Signature, B256, U256};
use alloy::providers::DynProvider;
use alloy::sol_types::Eip712Domain;
pub use contracts::bindings::Marketplace;
use contracts::bindings::{CreditToken, ParticipantRegistry, UsageSettlement};
use contracts::eip712;
use ledger::{ChainClient, ClientError, Deployment};
use serde::Serialize;

#[derive(Clone)]
pub struct LedgerLink {
    pub client: ChainClient,
    pub deployment: Deployment,
}

/// What `GET /v1/ledger` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerStatus {
    pub chain_id: u64,
    pub rpc_url: String,
    pub block_number: u64,
    pub deployment_block: u64,
    pub broker_account: Address,
    pub contracts: ledger::deployment::ContractAddresses,
}

impl LedgerLink {
    pub async fn status(&self) -> Result<LedgerStatus, ClientError> {
        Ok(LedgerStatus {
            chain_id: self.deployment.chain_id,
            rpc_url: self.client.url().to_string(),
            block_number: self.client.block_number().await?,
            deployment_block: self.deployment.deployment_block,
            broker_account: self.client.address(),
            contracts: self.deployment.contracts,
        })
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

/// The on-chain state of a contract (`Marketplace.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainStatus {
    None,
    Active,
    Suspended,
    Closing,
    Closed,
}

impl ChainStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Active,
            2 => Self::Suspended,
            3 => Self::Closing,
            4 => Self::Closed,
            _ => Self::None,
        }
    }
}

/// A contract as the chain has it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainAgreement {
    pub status: ChainStatus,
    pub consumer: Address,
    pub provider: Address,
    pub escrow: String,
    pub charged: String,
    pub terms_hash: B256,
    pub terms_cid: String,
    pub period: u64,
    pub period_price: String,
    pub next_charge_at: u64,
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

    fn read_err(&self, e: alloy::contract::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.client.url().to_string(),
            reason: e.to_string(),
        }
    }

    /// The registry nonce the account's next `Link` or `SetConfig` signature must carry.
    pub async fn registry_nonce(&self, account: Address) -> Result<U256, ClientError> {
        self.registry()
            .nonces(account)
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    /// The token nonce the account's next permit must carry.
    pub async fn permit_nonce(&self, account: Address) -> Result<U256, ClientError> {
        self.token()
            .nonces(account)
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    pub async fn credit_balance(&self, account: Address) -> Result<U256, ClientError> {
        self.token()
            .balanceOf(account)
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    /// The did an account is linked to on chain, with its role number (0 when none).
    pub async fn linked(&self, account: Address) -> Result<(String, u8), ClientError> {
        let p = self
            .registry()
            .participant(account)
            .call()
            .await
            .map_err(|e| self.read_err(e))?;
        Ok((p.did, p.role))
    }

    /// Links `did` to `account` with `role`, relaying the account's `Link` signature.
    pub async fn link(
        &self,
        did: &str,
        account: Address,
        role: u8,
        deadline: U256,
        signature: Bytes,
    ) -> Result<B256, ClientError> {
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
    ) -> Result<(B256, u64), ClientError> {
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
            .unwrap_or_default();
        Ok((receipt.transaction_hash, version))
    }

    /// Opens the contract with the consumer's authorisations (one transaction: permit + open).
    pub async fn open(&self, auth: &OpenAuthorization) -> Result<B256, ClientError> {
        let sig = &auth.permit_signature;
        let call = Marketplace::openWithPermitCall {
            req: auth.request.clone(),
            consumerSig: auth.open_signature.clone(),
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

    pub async fn agreement(&self, contract_id: B256) -> Result<ChainAgreement, ClientError> {
        let a = self
            .marketplace()
            .agreement(contract_id)
            .call()
            .await
            .map_err(|e| self.read_err(e))?;
        Ok(ChainAgreement {
            status: ChainStatus::from_u8(a.status),
            consumer: a.consumer,
            provider: a.provider,
            escrow: a.escrow.to_string(),
            charged: a.charged.to_string(),
            terms_hash: a.termsHash,
            terms_cid: a.termsCid,
            period: a.period,
            period_price: a.periodPrice.to_string(),
            next_charge_at: a.nextChargeAt,
        })
    }

    /// Closes the contract (the broker may at any time) and returns the refund paid back.
    pub async fn close(&self, contract_id: B256) -> Result<(B256, U256), ClientError> {
        let receipt = self
            .client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::closeCall {
                    contractId: contract_id,
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
            .unwrap_or_default();
        Ok((receipt.transaction_hash, refund))
    }
}

impl LedgerLink {
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
    ) -> Result<alloy::rpc::types::TransactionReceipt, ClientError> {
        let call = UsageSettlement::settleCall {
            batchId: batch_id,
            merkleRoot: root,
            recordsCid: records_cid.to_string(),
            recordCount: record_count,
            contractIds: charges.iter().map(|(c, _)| *c).collect(),
            amounts: charges.iter().map(|(_, a)| *a).collect(),
        };
        self.client
            .send_call(self.deployment.contracts.usage_settlement, &call)
            .await
    }

    /// Whether the chain has settled `batch_id`.
    pub async fn batch_settled(&self, batch_id: B256) -> Result<bool, ClientError> {
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

    /// The chain's own check that `record_hash` is in the batch.
    pub async fn verify_record(
        &self,
        batch_id: B256,
        record_hash: B256,
        proof: Vec<B256>,
    ) -> Result<bool, ClientError> {
        self.settlement()
            .verifyRecord(batch_id, record_hash, proof)
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    /// The broker's fee on charges, in basis points.
    pub async fn fee_bps(&self) -> Result<u16, ClientError> {
        self.marketplace()
            .feeBps()
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    /// Charges a reserved contract's next period when due; the chain suspends the contract
    /// itself when its escrow cannot pay. Returns whether it charged.
    pub async fn charge_period(&self, contract_id: B256) -> Result<bool, ClientError> {
        let receipt = self
            .client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::chargePeriodCall {
                    contractId: contract_id,
                },
            )
            .await?;
        Ok(receipt
            .inner
            .logs()
            .iter()
            .any(|l| l.log_decode::<Marketplace::Charged>().is_ok()))
    }

    pub async fn suspend(&self, contract_id: B256, reason: &str) -> Result<(), ClientError> {
        let mut r = [0u8; 32];
        let n = reason.len().min(32);
        r[..n].copy_from_slice(&reason.as_bytes()[..n]);
        self.client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::suspendCall {
                    contractId: contract_id,
                    reason: B256::from(r),
                },
            )
            .await
            .map(|_| ())
    }

    pub async fn resume(&self, contract_id: B256) -> Result<(), ClientError> {
        self.client
            .send_call(
                self.deployment.contracts.marketplace,
                &Marketplace::resumeCall {
                    contractId: contract_id,
                },
            )
            .await
            .map(|_| ())
    }

    /// The consumer's next top-up signature nonce.
    pub async fn topup_nonce(&self, consumer: Address) -> Result<U256, ClientError> {
        self.marketplace()
            .nonces(consumer)
            .call()
            .await
            .map_err(|e| self.read_err(e))
    }

    /// Adds `amount` to a contract's escrow with the consumer's permit and TopUp signatures.
    pub async fn top_up(
        &self,
        contract_id: B256,
        consumer: Address,
        amount: U256,
        deadline: U256,
        permit: Signature,
        topup_signature: Bytes,
    ) -> Result<B256, ClientError> {
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
                    contractId: contract_id,
                    amount,
                    deadline,
                    consumerSig: topup_signature,
                },
            )
            .await?;
        Ok(receipt.transaction_hash)
    }

    /// The latest block's timestamp: the time the contracts go by.
    pub async fn chain_time(&self) -> Result<u64, ClientError> {
        use alloy::providers::Provider;
        let block = self
            .client
            .provider()
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.client.url().to_string(),
                reason: e.to_string(),
            })?;
        Ok(block.map_or(0, |b| b.header.timestamp))
    }

    /// A region's cost data as BillingModels has it.
    pub async fn region(&self, name: &str) -> Result<contracts::billing::Region, ClientError> {
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
