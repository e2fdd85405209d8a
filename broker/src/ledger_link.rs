//! The broker's link to the ledger: the chain client for its relayer account and the deployment.

use alloy::primitives::Address;
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
