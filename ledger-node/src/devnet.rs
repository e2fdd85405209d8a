//! The embedded development ledger: Anvil on a data directory with Mercato's contracts deployed
//! once. A second start on the same directory reuses the chain and the deployment.

use std::path::PathBuf;

use alloy::primitives::U256;

use crate::accounts::{dev_signer, KeyError, BROKER_INDEX, DEPLOYER_INDEX, DEV_ACCOUNTS};
use crate::anvil::{AnvilError, AnvilOptions, DevChain};
use crate::client::{ChainClient, ClientError};
use crate::deploy::{deploy, DeployError, DeployOptions, RegionCosts};
use crate::deployment::{Deployment, DeploymentError};
use contracts::CREDIT;

#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    #[error(transparent)]
    Anvil(#[from] AnvilError),
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The running development ledger.
pub struct Devnet {
    pub chain: DevChain,
    pub deployment: Deployment,
    /// True when this start deployed the contracts, false when it reused a deployment.
    pub deployed_now: bool,
}

/// Development deployment: dev accounts funded with credits, the faucet on, sample regions.
pub fn dev_deploy_options() -> Result<DeployOptions, KeyError> {
    let broker = dev_signer(BROKER_INDEX)?.address();
    let credits = |n: u64| U256::from(n) * U256::from(CREDIT);
    let mut fund = Vec::new();
    for i in 2..DEV_ACCOUNTS {
        fund.push((dev_signer(i)?.address(), credits(1_000_000)));
    }
    let region = |name: &str, high_demand: bool| RegionCosts {
        name: name.into(),
        high_demand,
        high_demand_cost: U256::from(50_000u64),
        cpu_cost: U256::from(100u64),
        memory_cost: U256::from(100u64),
        gpu_cost: U256::from(CREDIT / 10),
    };
    Ok(DeployOptions {
        faucet: Some((credits(1_000), 3600)),
        // A development chain's admin may hand over at once (still in two steps).
        admin_delay: 0,
        // Long enough to try a challenge by hand, short enough to see earnings arrive.
        challenge_window: 60,
        fund,
        regions: vec![
            region("eu-west", false),
            region("eu-central", true),
            region("us-east", false),
        ],
        ..DeployOptions::production(broker)
    })
}

/// Starts Anvil on `options.data_dir` and makes sure the contracts are deployed there.
pub async fn up(
    options: &AnvilOptions,
    mut progress: impl FnMut(&str),
) -> Result<Devnet, DevnetError> {
    let chain = DevChain::start(options).await?;
    let path = Deployment::path_in(&options.data_dir);
    let client = ChainClient::connect(chain.url(), dev_signer(DEPLOYER_INDEX)?).await?;
    if let Some(deployment) = Deployment::load(&path)? {
        deployment.verify_on(client.provider()).await?;
        return Ok(Devnet {
            chain,
            deployment,
            deployed_now: false,
        });
    }
    let deployment = deploy(&client, &dev_deploy_options()?, &mut progress).await?;
    deployment.save(&path)?;
    Ok(Devnet {
        chain,
        deployment,
        deployed_now: true,
    })
}

/// The data directory the tools use when none is given.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from(".data/ledger")
}
