//! Deploys Mercato's contracts to any EVM node and wires their roles. Nothing is recorded until
//! everything is deployed and configured: the caller writes `deployment.json` from the result.

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolConstructor;
use contracts::bindings::roles;
use contracts::{
    BillingModels, CredentialRegistry, CreditToken, Marketplace, ParticipantRegistry,
    UsageSettlement,
};

use crate::client::{ChainClient, ClientError};
use crate::deployment::{ContractAddresses, Deployment, FORMAT_VERSION};

/// Roughly the gas a full deployment uses (measured: about 9.5M); used to check funds up front.
const DEPLOY_GAS_BUDGET: u64 = 12_000_000;

/// A region's cost data for BillingModels.
#[derive(Debug, Clone)]
pub struct RegionCosts {
    pub name: String,
    pub high_demand: bool,
    pub high_demand_cost: U256,
    pub cpu_cost: U256,
    pub memory_cost: U256,
    pub gpu_cost: U256,
}

#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Refuse to deploy unless the node reports this chain id.
    pub expected_chain_id: Option<u64>,
    /// The broker's relayer account (gets the broker, registrar, settler and issuer roles). It
    /// must not be the deployer: the admin of the contracts that hold credits has no operational
    /// role.
    pub broker: Address,
    /// Seconds a transfer of the Marketplace's and UsageSettlement's admin waits between its
    /// start and its acceptance.
    pub admin_delay: u64,
    pub fee_bps: u16,
    /// Seconds a party's close request waits for outstanding usage to settle.
    pub close_grace: u64,
    /// Seconds a usage charge stays locked (and challengeable) before the provider earns it;
    /// fixed per contract at opening.
    pub challenge_window: u64,
    /// Development only: credits per faucet drip (0 keeps the faucet off) and its cooldown.
    pub faucet: Option<(U256, u64)>,
    /// Development only: accounts to mint credits to.
    pub fund: Vec<(Address, U256)>,
    pub regions: Vec<RegionCosts>,
}

impl DeployOptions {
    pub fn production(broker: Address) -> Self {
        Self {
            expected_chain_id: None,
            broker,
            admin_delay: 2 * 24 * 3600,
            fee_bps: 100,
            close_grace: 24 * 3600,
            challenge_window: 24 * 3600,
            faucet: None,
            fund: Vec::new(),
            regions: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("the node at {url} is chain {actual}, not the expected chain {expected}; check --rpc-url and --chain-id")]
    WrongChain {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("deployer {account} holds {balance} wei but a deployment needs about {needed} wei at the current gas price; fund it and run again")]
    InsufficientFunds {
        account: Address,
        balance: U256,
        needed: U256,
    },
    #[error("the broker account {0} is the deployer: the admin holds no operational role, so deploy from another account or name another --broker")]
    BrokerIsAdmin(Address),
    #[error("while {step}: {source}")]
    Step {
        step: &'static str,
        #[source]
        source: ClientError,
    },
}

fn step(step: &'static str) -> impl FnOnce(ClientError) -> DeployError {
    move |source| DeployError::Step { step, source }
}

fn init_code(bytecode: &Bytes, args: Vec<u8>) -> Bytes {
    let mut code = bytecode.to_vec();
    code.extend(args);
    code.into()
}

/// Deploys everything from `client`'s account (which becomes the admin), reporting each step.
pub async fn deploy(
    client: &ChainClient,
    options: &DeployOptions,
    mut progress: impl FnMut(&str),
) -> Result<Deployment, DeployError> {
    let chain_id = client.chain_id();
    if let Some(expected) = options.expected_chain_id {
        if expected != chain_id {
            return Err(DeployError::WrongChain {
                url: client.url().to_string(),
                expected,
                actual: chain_id,
            });
        }
    }
    let admin = client.address();
    if options.broker == admin {
        return Err(DeployError::BrokerIsAdmin(admin));
    }
    let admin_delay = alloy::primitives::aliases::U48::from(options.admin_delay);
    let gas_price = client
        .provider()
        .get_gas_price()
        .await
        .map_err(|e| step("reading the gas price")(ClientError::Rpc(e.to_string())))?;
    let needed = U256::from(gas_price) * U256::from(DEPLOY_GAS_BUDGET);
    let balance = client
        .balance(admin)
        .await
        .map_err(step("reading the deployer's balance"))?;
    if balance < needed {
        return Err(DeployError::InsufficientFunds {
            account: admin,
            balance,
            needed,
        });
    }

    progress("CreditToken");
    let (credit_token, first) = client
        .deploy(init_code(
            &CreditToken::BYTECODE,
            CreditToken::constructorCall { admin }.abi_encode(),
        ))
        .await
        .map_err(step("deploying CreditToken"))?;
    let deployment_block = first.block_number.unwrap_or_default();

    progress("ParticipantRegistry");
    let (participant_registry, _) = client
        .deploy(init_code(
            &ParticipantRegistry::BYTECODE,
            ParticipantRegistry::constructorCall { admin }.abi_encode(),
        ))
        .await
        .map_err(step("deploying ParticipantRegistry"))?;

    progress("BillingModels");
    let (billing_models, _) = client
        .deploy(init_code(
            &BillingModels::BYTECODE,
            BillingModels::constructorCall { admin }.abi_encode(),
        ))
        .await
        .map_err(step("deploying BillingModels"))?;

    progress("Marketplace");
    let (marketplace, _) = client
        .deploy(init_code(
            &Marketplace::BYTECODE,
            Marketplace::constructorCall {
                admin,
                adminDelay: admin_delay,
                broker: options.broker,
                token_: credit_token,
                registry_: participant_registry,
                feeBps_: options.fee_bps,
                closeGrace_: options.close_grace,
                challengeWindow_: options.challenge_window,
            }
            .abi_encode(),
        ))
        .await
        .map_err(step("deploying Marketplace"))?;

    progress("UsageSettlement");
    let (usage_settlement, _) = client
        .deploy(init_code(
            &UsageSettlement::BYTECODE,
            UsageSettlement::constructorCall {
                admin,
                adminDelay: admin_delay,
                settler: options.broker,
                marketplace_: marketplace,
            }
            .abi_encode(),
        ))
        .await
        .map_err(step("deploying UsageSettlement"))?;

    progress("CredentialRegistry");
    let (credential_registry, _) = client
        .deploy(init_code(
            &CredentialRegistry::BYTECODE,
            CredentialRegistry::constructorCall { admin }.abi_encode(),
        ))
        .await
        .map_err(step("deploying CredentialRegistry"))?;

    progress("roles");
    client
        .send_call(
            marketplace,
            &Marketplace::setSettlementCall {
                settlement_: usage_settlement,
            },
        )
        .await
        .map_err(step("naming the settlement contract"))?;
    let grant = |role, account| Marketplace::grantRoleCall { role, account };
    for (contract, role) in [
        (participant_registry, roles::registrar()),
        (credential_registry, roles::issuer()),
    ] {
        client
            .send_call(contract, &grant(role, options.broker))
            .await
            .map_err(step("granting the broker's roles"))?;
    }

    if !options.regions.is_empty() {
        progress("regions");
    }
    for r in &options.regions {
        client
            .send_call(
                billing_models,
                &BillingModels::setRegionCall {
                    name: r.name.clone(),
                    highDemand: r.high_demand,
                    highDemandCost: r.high_demand_cost,
                    cpuCost: r.cpu_cost,
                    memoryCost: r.memory_cost,
                    gpuCost: r.gpu_cost,
                },
            )
            .await
            .map_err(step("setting region costs"))?;
    }

    if let Some((amount, cooldown)) = options.faucet {
        progress("faucet");
        client
            .send_call(
                credit_token,
                &CreditToken::configureFaucetCall { amount, cooldown },
            )
            .await
            .map_err(step("configuring the faucet"))?;
    }
    if !options.fund.is_empty() {
        progress("funding development accounts");
    }
    for (to, amount) in &options.fund {
        client
            .send_call(
                credit_token,
                &CreditToken::mintCall {
                    to: *to,
                    amount: *amount,
                },
            )
            .await
            .map_err(step("minting development credits"))?;
    }

    Ok(Deployment {
        format_version: FORMAT_VERSION,
        chain_id,
        deployment_block,
        deployer: admin,
        broker: options.broker,
        contracts: ContractAddresses {
            credit_token,
            participant_registry,
            marketplace,
            billing_models,
            usage_settlement,
            credential_registry,
        },
    })
}
