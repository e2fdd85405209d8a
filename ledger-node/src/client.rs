//! The chain client the broker and the tools use. Standard JSON-RPC only, so it works the same
//! against Anvil, Quorum and Besu.
//!
//! Sending: gas is estimated first (a revert is reported with its data before any nonce is used),
//! then the transaction takes the next local nonce, is signed once and broadcast. A transient
//! failure (the node unreachable, a 5xx, a timeout) re-broadcasts the *same signed bytes*, so a
//! retry can never become a second transaction. Receipts are polled; a transaction that vanished
//! from the pool is broadcast again, still with the same bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::consensus::TxEnvelope;
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, Log, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolInterface};
use alloy::transports::{RpcError, TransportErrorKind};
use tokio::sync::Mutex;

use crate::journal::TxJournal;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the chain node at {url}: {reason}; check that it is running and the URL is right")]
    Unreachable { url: String, reason: String },
    #[error("the chain node answered with an error: {0}")]
    Rpc(String),
    #[error("the transaction would revert: {reason}")]
    Reverted { reason: String, data: Option<Bytes> },
    #[error("transaction {hash} was mined but reverted")]
    Failed { hash: B256 },
    #[error("the node refused transaction {hash}: {message}")]
    Rejected { hash: B256, message: String },
    #[error("no receipt for transaction {hash} after {waited:?}; it may still be mined, look it up before sending again")]
    Timeout { hash: B256, waited: Duration },
    #[error("cannot build or sign the transaction: {0}")]
    Build(String),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

impl ClientError {
    /// The revert data of a call that would revert, decoded as one of a contract's errors.
    pub fn decode_revert<E: SolInterface>(&self) -> Option<E> {
        match self {
            Self::Reverted {
                data: Some(data), ..
            } => E::abi_decode(data).ok(),
            _ => None,
        }
    }
}

/// How hard the client tries before giving up.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Broadcast attempts on transient errors.
    pub broadcast_attempts: u32,
    /// First back-off between attempts; doubles each time.
    pub backoff: Duration,
    /// Longest pause between two receipt polls (they start at 1 ms and double).
    pub receipt_poll: Duration,
    /// Re-broadcast the same bytes when no receipt came for this long.
    pub rebroadcast_after: Duration,
    pub receipt_timeout: Duration,
    /// Gas limit = estimate × (100 + margin) / 100.
    pub gas_margin_percent: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            broadcast_attempts: 6,
            backoff: Duration::from_millis(100),
            receipt_poll: Duration::from_millis(50),
            rebroadcast_after: Duration::from_secs(15),
            receipt_timeout: Duration::from_secs(120),
            gas_margin_percent: 20,
        }
    }
}

#[derive(Debug, Default)]
struct NonceState {
    /// The next nonce to hand out; None until read from the node (or after a resync).
    next: Option<u64>,
}

/// A client for one signing account on one chain. Cheap to clone; clones share the nonce state.
#[derive(Clone)]
pub struct ChainClient {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    provider: DynProvider,
    wallet: EthereumWallet,
    address: Address,
    chain_id: u64,
    options: ClientOptions,
    nonce: Mutex<NonceState>,
    fees: Mutex<Option<(Instant, Fees)>>,
    /// Every signed transaction is written here before it is broadcast.
    journal: Option<Arc<TxJournal>>,
}

/// Fee parameters, read from the node at most once per `FEE_TTL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fees {
    Eip1559 { max_fee: u128, tip: u128 },
    Legacy { gas_price: u128 },
}

/// How long fees are reused. The EIP-1559 cap is twice the base fee, which covers several blocks
/// of base-fee increases, so a short reuse never underprices a transaction.
const FEE_TTL: Duration = Duration::from_secs(2);

fn classify(url: &str, err: RpcError<TransportErrorKind>) -> ClientError {
    if let Some(payload) = err.as_error_resp() {
        if let Some(data) = payload.as_revert_data() {
            return ClientError::Reverted {
                reason: payload.message.to_string(),
                data: Some(data),
            };
        }
        if payload.message.contains("revert") {
            return ClientError::Reverted {
                reason: payload.message.to_string(),
                data: None,
            };
        }
        return ClientError::Rpc(payload.message.to_string());
    }
    if err.is_transport_error() {
        return ClientError::Unreachable {
            url: url.to_string(),
            reason: err.to_string(),
        };
    }
    ClientError::Rpc(err.to_string())
}

fn is_transient(err: &ClientError) -> bool {
    matches!(err, ClientError::Unreachable { .. })
}

impl ChainClient {
    /// Connects and reads the chain id; fails with a clear error when the node does not answer.
    pub async fn connect(rpc_url: &str, signer: PrivateKeySigner) -> Result<Self, ClientError> {
        Self::connect_with(rpc_url, signer, ClientOptions::default()).await
    }

    pub async fn connect_with(
        rpc_url: &str,
        signer: PrivateKeySigner,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let url: reqwest::Url = rpc_url.parse().map_err(|e| ClientError::Unreachable {
            url: rpc_url.to_string(),
            reason: format!("not a URL ({e})"),
        })?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url)
            .erased();
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| classify(rpc_url, e))?;
        let address = signer.address();
        Ok(Self {
            inner: Arc::new(Inner {
                url: rpc_url.to_string(),
                provider,
                wallet: EthereumWallet::from(signer),
                address,
                chain_id,
                options,
                nonce: Mutex::new(NonceState::default()),
                fees: Mutex::new(None),
                journal: None,
            }),
        })
    }

    /// This client, writing each transaction it signs to `journal` before broadcasting it. Call
    /// it before the first clone.
    pub fn journaled(mut self, journal: Arc<TxJournal>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.journal = Some(journal),
            None => tracing::error!(
                "a chain client was journaled after it was cloned; its clones are not"
            ),
        }
        self
    }

    pub fn address(&self) -> Address {
        self.inner.address
    }

    pub fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The read-only provider, for calls and for the typed bindings.
    pub fn provider(&self) -> &DynProvider {
        &self.inner.provider
    }

    fn err(&self, e: RpcError<TransportErrorKind>) -> ClientError {
        classify(&self.inner.url, e)
    }

    pub async fn balance(&self, who: Address) -> Result<U256, ClientError> {
        self.inner
            .provider
            .get_balance(who)
            .await
            .map_err(|e| self.err(e))
    }

    pub async fn block_number(&self) -> Result<u64, ClientError> {
        self.inner
            .provider
            .get_block_number()
            .await
            .map_err(|e| self.err(e))
    }

    /// Calls a contract function and waits for the receipt.
    pub async fn send_call<C: SolCall>(
        &self,
        to: Address,
        call: &C,
    ) -> Result<TransactionReceipt, ClientError> {
        let tx = TransactionRequest::default()
            .with_to(to)
            .with_input(call.abi_encode());
        self.send(tx).await
    }

    /// Deploys `init_code` (bytecode followed by the ABI-encoded constructor arguments).
    pub async fn deploy(
        &self,
        init_code: Bytes,
    ) -> Result<(Address, TransactionReceipt), ClientError> {
        let tx = TransactionRequest::default().with_deploy_code(init_code);
        let receipt = self.send(tx).await?;
        let address = receipt
            .contract_address
            .ok_or_else(|| ClientError::Rpc("deployment receipt has no contract address".into()))?;
        Ok((address, receipt))
    }

    /// Estimates the gas of `tx` from this account; a revert comes back as `Reverted`.
    pub async fn estimate_gas(&self, tx: &TransactionRequest) -> Result<u64, ClientError> {
        self.estimate_from(self.inner.address, tx.clone()).await
    }

    async fn estimate_from(
        &self,
        from: Address,
        tx: TransactionRequest,
    ) -> Result<u64, ClientError> {
        self.inner
            .provider
            .estimate_gas(tx.with_from(from))
            .await
            .map_err(|e| self.err(e))
    }

    /// The gas limit `tx` from `from` is sent with: the estimate with this client's margin.
    async fn gas_limit(&self, from: Address, tx: TransactionRequest) -> Result<u64, ClientError> {
        let estimate = self.estimate_from(from, tx).await?;
        Ok(estimate.saturating_mul(100 + self.inner.options.gas_margin_percent) / 100)
    }

    /// Sends a transaction and waits for a successful receipt.
    pub async fn send(&self, tx: TransactionRequest) -> Result<TransactionReceipt, ClientError> {
        let pending = self.submit(tx).await?;
        self.wait(pending).await
    }

    /// Signs and broadcasts `tx`, returning its hash once the node has accepted it.
    pub async fn submit(&self, tx: TransactionRequest) -> Result<PendingTx, ClientError> {
        let gas = self.gas_limit(self.inner.address, tx.clone()).await?;
        let tx = self.with_fees(tx).await?.with_gas_limit(gas);

        // The nonce lock is held until the node has the transaction, so nonces reach it in order.
        let mut state = self.inner.nonce.lock().await;
        let nonce = match state.next {
            Some(n) => n,
            None => self
                .inner
                .provider
                .get_transaction_count(self.inner.address)
                .pending()
                .await
                .map_err(|e| self.err(e))?,
        };
        let envelope: TxEnvelope = tx
            .with_from(self.inner.address)
            .with_chain_id(self.inner.chain_id)
            .with_nonce(nonce)
            .build(&self.inner.wallet)
            .await
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let raw = Bytes::from(envelope.encoded_2718());
        let hash = *envelope.tx_hash();
        if let Some(journal) = &self.inner.journal {
            journal.record(hash, &raw)?;
        }
        match self.broadcast(hash, &raw).await {
            Ok(()) => {
                state.next = Some(nonce + 1);
                Ok(PendingTx { hash, raw })
            }
            Err(e) => {
                // The nonce may or may not be used now: read it again from the node next time.
                state.next = None;
                // Reported as failed, so never sent again after a restart.
                if let Some(journal) = &self.inner.journal {
                    journal.void(hash)?;
                }
                Err(e)
            }
        }
    }

    async fn broadcast(&self, hash: B256, raw: &Bytes) -> Result<(), ClientError> {
        let o = &self.inner.options;
        let mut delay = o.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.inner.provider.send_raw_transaction(raw).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    let err = self.err(e);
                    let msg = err.to_string().to_lowercase();
                    // The node has it already (an earlier attempt went through).
                    if msg.contains("already known") || msg.contains("known transaction") {
                        return Ok(());
                    }
                    if msg.contains("nonce too low") {
                        // Either an earlier attempt of ours was mined, or the nonce was taken.
                        return match self.receipt(hash).await? {
                            Some(_) => Ok(()),
                            None => Err(ClientError::Rejected {
                                hash,
                                message: "nonce already used by another transaction".into(),
                            }),
                        };
                    }
                    if is_transient(&err) && attempt < o.broadcast_attempts {
                        tracing::warn!(%hash, attempt, error = %err, "broadcast failed, retrying the same transaction");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                        continue;
                    }
                    return Err(match err {
                        ClientError::Rpc(message) => ClientError::Rejected { hash, message },
                        other => other,
                    });
                }
            }
        }
    }

    async fn receipt(&self, hash: B256) -> Result<Option<TransactionReceipt>, ClientError> {
        self.inner
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| self.err(e))
    }

    /// Waits for the receipt of a submitted transaction, re-broadcasting the same bytes if the
    /// node lost it; an error when it reverted.
    pub async fn wait(&self, pending: PendingTx) -> Result<TransactionReceipt, ClientError> {
        let o = &self.inner.options;
        let start = Instant::now();
        let mut last_broadcast = Instant::now();
        // Short first polls: an instant-mining dev chain has the receipt within a millisecond or
        // two, a QBFT chain within a block period; back off to `receipt_poll` either way.
        let mut poll = Duration::from_millis(1).min(o.receipt_poll);
        loop {
            match self.receipt(pending.hash).await {
                Ok(Some(receipt)) => {
                    return if receipt.status() {
                        Ok(receipt)
                    } else {
                        Err(ClientError::Failed { hash: pending.hash })
                    };
                }
                Ok(None) => {}
                Err(e) if is_transient(&e) => {
                    tracing::warn!(hash = %pending.hash, error = %e, "receipt poll failed, retrying")
                }
                Err(e) => return Err(e),
            }
            if start.elapsed() >= o.receipt_timeout {
                return Err(ClientError::Timeout {
                    hash: pending.hash,
                    waited: start.elapsed(),
                });
            }
            if last_broadcast.elapsed() >= o.rebroadcast_after {
                last_broadcast = Instant::now();
                if let Err(e) = self.broadcast(pending.hash, &pending.raw).await {
                    tracing::warn!(hash = %pending.hash, error = %e, "re-broadcast failed");
                }
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(o.receipt_poll);
        }
    }

    /// EIP-1559 fees when the chain has a base fee (Anvil, Besu), a legacy gas price otherwise
    /// (GoQuorum, or Besu with a free-gas network).
    async fn with_fees(&self, tx: TransactionRequest) -> Result<TransactionRequest, ClientError> {
        if tx.gas_price.is_some() || tx.max_fee_per_gas.is_some() {
            return Ok(tx);
        }
        Ok(match self.fees().await? {
            Fees::Eip1559 { max_fee, tip } => tx
                .with_max_fee_per_gas(max_fee)
                .with_max_priority_fee_per_gas(tip),
            Fees::Legacy { gas_price } => tx.with_gas_price(gas_price),
        })
    }

    /// The chain's current fees (read at most once per `FEE_TTL`).
    pub async fn fees(&self) -> Result<Fees, ClientError> {
        let mut cached = self.inner.fees.lock().await;
        Ok(match *cached {
            Some((at, fees)) if at.elapsed() < FEE_TTL => fees,
            _ => {
                let fees = self.read_fees().await?;
                *cached = Some((Instant::now(), fees));
                fees
            }
        })
    }

    /// What a call by another account (a participant signing its own transaction) needs: that
    /// account's next nonce, a gas limit (the estimate with this client's margin; a call that
    /// would revert comes back as `Reverted`) and the chain's fees.
    pub async fn terms_for(
        &self,
        from: Address,
        to: Address,
        input: Bytes,
    ) -> Result<(u64, u64, Fees), ClientError> {
        let call = TransactionRequest::default().with_to(to).with_input(input);
        let gas = self.gas_limit(from, call).await?;
        let nonce = self
            .inner
            .provider
            .get_transaction_count(from)
            .pending()
            .await
            .map_err(|e| self.err(e))?;
        Ok((nonce, gas, self.fees().await?))
    }

    /// Broadcasts a transaction another account signed, byte for byte (re-broadcast if the node
    /// loses it), and waits for its receipt; `Failed` when it reverted.
    pub async fn relay(&self, raw: Bytes) -> Result<TransactionReceipt, ClientError> {
        // A transaction's hash is the hash of its EIP-2718 encoding.
        let hash = alloy::primitives::keccak256(&raw);
        self.broadcast(hash, &raw).await?;
        self.wait(PendingTx { hash, raw }).await
    }

    async fn read_fees(&self) -> Result<Fees, ClientError> {
        let p = &self.inner.provider;
        let block = p
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| self.err(e))?
            .ok_or_else(|| ClientError::Rpc("the node has no latest block".into()))?;
        Ok(match block.header.base_fee_per_gas {
            Some(base) => {
                let tip = p
                    .get_max_priority_fee_per_gas()
                    .await
                    .map_err(|e| self.err(e))?;
                Fees::Eip1559 {
                    max_fee: 2 * u128::from(base) + tip,
                    tip,
                }
            }
            None => Fees::Legacy {
                gas_price: p.get_gas_price().await.map_err(|e| self.err(e))?,
            },
        })
    }

    /// Logs of `addresses` in `from..=to`.
    pub async fn logs(
        &self,
        addresses: &[Address],
        from: u64,
        to: u64,
    ) -> Result<Vec<Log>, ClientError> {
        let filter = Filter::new()
            .address(addresses.to_vec())
            .from_block(from)
            .to_block(to);
        self.inner
            .provider
            .get_logs(&filter)
            .await
            .map_err(|e| self.err(e))
    }
}

/// A transaction the node accepted: its hash and the signed bytes (for re-broadcasting).
#[derive(Debug, Clone)]
pub struct PendingTx {
    pub hash: B256,
    raw: Bytes,
}

/// Follows the logs of some contracts from a block on, in bounded ranges, leaving the newest
/// `confirmations` blocks for later. `next_block` is the cursor to persist; a poller made with
/// `resume` from it sees every later log exactly once.
#[derive(Debug, Clone)]
pub struct EventPoller {
    addresses: Vec<Address>,
    next_block: u64,
    confirmations: u64,
    max_range: u64,
}

impl EventPoller {
    pub fn resume(addresses: Vec<Address>, next_block: u64) -> Self {
        Self {
            addresses,
            next_block,
            confirmations: 0,
            max_range: 2_000,
        }
    }

    pub fn with_confirmations(mut self, confirmations: u64) -> Self {
        self.confirmations = confirmations;
        self
    }

    pub fn with_max_range(mut self, max_range: u64) -> Self {
        self.max_range = max_range.max(1);
        self
    }

    pub fn next_block(&self) -> u64 {
        self.next_block
    }

    /// The logs of the next range (possibly empty when caught up); the cursor moves past it only
    /// when the node answered.
    pub async fn poll(&mut self, client: &ChainClient) -> Result<Vec<Log>, ClientError> {
        let head = client.block_number().await?;
        let Some(safe) = head.checked_sub(self.confirmations) else {
            return Ok(Vec::new());
        };
        if safe < self.next_block {
            return Ok(Vec::new());
        }
        let to = safe.min(self.next_block + self.max_range - 1);
        let logs = client.logs(&self.addresses, self.next_block, to).await?;
        self.next_block = to + 1;
        Ok(logs)
    }

    /// True when the poller has reached the safe head.
    pub async fn caught_up(&self, client: &ChainClient) -> Result<bool, ClientError> {
        let head = client.block_number().await?;
        Ok(head.saturating_sub(self.confirmations) < self.next_block)
    }
}
