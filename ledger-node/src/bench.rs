//! The chain's raw throughput, measured the same way wherever a benchmark needs it as its
//! ceiling (`chain-bench`, `purchase-bench`): ERC-20 transfers, each estimated, sent and confirmed.

use std::time::Instant;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use contracts::{CreditToken, CREDIT};
use indicatif::{ProgressBar, ProgressStyle};

use crate::accounts::{dev_signer, DEPLOYER_INDEX};
use crate::{ChainClient, ClientError};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Chain(#[from] ClientError),
    #[error(transparent)]
    Key(#[from] crate::accounts::KeyError),
    #[error("a sender task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub fn bar(len: usize, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template("{msg:>24} {bar:40} {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_message(what.to_string());
    b
}

pub async fn transfers(
    clients: &[ChainClient],
    token: Address,
    per_sender: usize,
    label: &str,
) -> Result<f64, BenchError> {
    let to = Address::repeat_byte(0xee);
    let progress = bar(clients.len() * per_sender, label);
    let start = Instant::now();
    let tasks = clients.iter().cloned().map(|client| {
        let progress = progress.clone();
        tokio::spawn(async move {
            for _ in 0..per_sender {
                client
                    .send_call(
                        token,
                        &CreditToken::transferCall {
                            to,
                            value: U256::from(1),
                        },
                    )
                    .await?;
                progress.inc(1);
            }
            Ok::<_, ClientError>(())
        })
    });
    for t in futures::future::join_all(tasks).await {
        t??;
    }
    let secs = start.elapsed().as_secs_f64();
    progress.finish_and_clear();
    Ok((clients.len() * per_sender) as f64 / secs)
}

/// Funds `n` fresh accounts with gas money and credits from the deployer.
pub async fn fresh_senders(
    url: &str,
    token: Address,
    n: usize,
) -> Result<Vec<ChainClient>, BenchError> {
    let admin = ChainClient::connect(url, dev_signer(DEPLOYER_INDEX)?).await?;
    let mut clients = Vec::new();
    for _ in 0..n {
        let signer = PrivateKeySigner::random();
        let to = signer.address();
        admin
            .send(
                alloy::rpc::types::TransactionRequest::default()
                    .to(to)
                    .value(U256::from(10u128.pow(20))),
            )
            .await?;
        admin
            .send_call(
                token,
                &CreditToken::mintCall {
                    to,
                    amount: U256::from(1_000 * CREDIT),
                },
            )
            .await?;
        clients.push(ChainClient::connect(url, signer).await?);
    }
    Ok(clients)
}
