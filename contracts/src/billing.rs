//! The NEMO MOCA billing models in Rust, the twin of `BillingModels.sol`: the broker prices usage
//! with these functions and the chain computes the same numbers (a property test compares them).
//! Amounts are credit base units (1 credit = 10^8). Arithmetic is checked: where Solidity would
//! revert, these return an error.

use alloy::primitives::U256;

pub const TOKEN: u64 = 100_000_000;
pub const MAX_FREE_NETWORK_USAGE: u64 = 500_000_000;
pub const CHARGE_PER_GB: u64 = 10_000_000;
pub const NETWORK_SCALE: u64 = 100_000_000;
pub const GPU_TIME_DIVISOR: u64 = 360_000_000_000;
pub const FULL_GPU: u64 = 100_000_000;
pub const DATASET_REWARD: u64 = 1_000_000_000;
pub const REGISTRATION_REWARD: u64 = 5 * TOKEN;
pub const INGRESS_REWARD: u64 = 5 * TOKEN;
pub const GREEN_REWARD_PER_PERCENT: u64 = 1_000_000;

/// A region's cost data (NEMO's NemoTokenEstimationSetup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    pub high_demand: bool,
    pub high_demand_cost: U256,
    pub cpu_cost: U256,
    pub memory_cost: U256,
    pub gpu_cost: U256,
}

/// One service's usage on one cluster over an interval (ServiceProviderModel's metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ComputeUsage {
    pub cpu_usage: U256,
    pub memory_usage: U256,
    pub cluster_cpu_usage: U256,
    pub cluster_memory_usage: U256,
    pub cpu_base_rate: U256,
    pub memory_base_rate: U256,
    pub green_energy_percent: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("the cluster's usage is zero, so the service's share is undefined")]
    ZeroClusterUsage,
    #[error("green-energy share {0}% is outside 0..=100")]
    GreenShareOutOfRange(u8),
    #[error("GPU usage fraction {0} is above 1.0 (10^8)")]
    UsageFractionOutOfRange(U256),
    #[error("the amounts overflow 256 bits")]
    Overflow,
}

fn mul(a: U256, b: U256) -> Result<U256, BillingError> {
    a.checked_mul(b).ok_or(BillingError::Overflow)
}

fn add(a: U256, b: U256) -> Result<U256, BillingError> {
    a.checked_add(b).ok_or(BillingError::Overflow)
}

/// Reward deducted for a green-energy share: linear, 10^6 per percentage point.
pub fn green_energy_reward(percent: u8) -> Result<U256, BillingError> {
    if percent > 100 {
        return Err(BillingError::GreenShareOutOfRange(percent));
    }
    Ok(U256::from(percent) * U256::from(GREEN_REWARD_PER_PERCENT))
}

/// ServiceProviderModel.computeCpuCredits (and its RAM twin), as the seed writes it.
pub fn resource_credits(
    usage: U256,
    cluster_usage: U256,
    regional_cost: U256,
    base_rate: U256,
) -> Result<U256, BillingError> {
    let scaled = mul(usage, U256::from(1_000u64))?;
    if scaled <= regional_cost {
        return Ok(U256::ZERO);
    }
    if cluster_usage.is_zero() {
        return Err(BillingError::ZeroClusterUsage);
    }
    add(
        mul(scaled / cluster_usage, U256::from(TOKEN))?,
        mul(base_rate, U256::from(100_000u64))?,
    )
}

/// ServiceProviderModel.computeCredits.
pub fn compute_credits(region: &Region, u: &ComputeUsage) -> Result<U256, BillingError> {
    let mut tokens = add(
        resource_credits(
            u.cpu_usage,
            u.cluster_cpu_usage,
            region.cpu_cost,
            u.cpu_base_rate,
        )?,
        resource_credits(
            u.memory_usage,
            u.cluster_memory_usage,
            region.memory_cost,
            u.memory_base_rate,
        )?,
    )?;
    if region.high_demand {
        tokens = add(tokens, region.high_demand_cost)?;
    }
    let reward = green_energy_reward(u.green_energy_percent)?;
    if tokens >= reward {
        tokens -= reward;
    }
    Ok(tokens / U256::from(1_000u64))
}

/// MachineLearningModel.computeCredits with an explicit GPU-hour price (`TOKEN` in the seed).
pub fn machine_learning_credits(
    region: &Region,
    allocated_time: U256,
    usage_fraction: U256,
    gpu_hour_price: U256,
) -> Result<U256, BillingError> {
    if usage_fraction > U256::from(FULL_GPU) {
        return Err(BillingError::UsageFractionOutOfRange(usage_fraction));
    }
    let time_cost = mul(mul(allocated_time, usage_fraction)?, gpu_hour_price)?;
    add(time_cost / U256::from(GPU_TIME_DIVISOR), region.gpu_cost)
}

/// NetworkUsageModel.computeCredits: usage in GB × 10^8, the first 5 GB free.
pub fn network_credits(usage: U256) -> Result<U256, BillingError> {
    let free = U256::from(MAX_FREE_NETWORK_USAGE);
    if usage <= free {
        return Ok(U256::ZERO);
    }
    Ok(mul(usage - free, U256::from(CHARGE_PER_GB))? / U256::from(NETWORK_SCALE))
}

pub fn dataset_reward() -> U256 {
    U256::from(DATASET_REWARD)
}

pub fn registration_reward(ingress_enabled: bool) -> U256 {
    U256::from(if ingress_enabled {
        REGISTRATION_REWARD + INGRESS_REWARD
    } else {
        REGISTRATION_REWARD
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(v: u64) -> U256 {
        U256::from(v)
    }

    #[test]
    fn network_first_five_gb_are_free_then_a_tenth_of_a_credit_per_gb() {
        assert_eq!(network_credits(u(5 * TOKEN)).unwrap(), U256::ZERO);
        assert_eq!(network_credits(u(6 * TOKEN)).unwrap(), u(TOKEN / 10));
        assert_eq!(network_credits(u(15 * TOKEN)).unwrap(), u(TOKEN));
    }

    #[test]
    fn green_reward_is_linear_and_fixes_the_seed_table() {
        assert_eq!(green_energy_reward(0).unwrap(), U256::ZERO);
        assert_eq!(green_energy_reward(20).unwrap(), u(20_000_000));
        assert_eq!(green_energy_reward(60).unwrap(), u(60_000_000));
        assert_eq!(green_energy_reward(80).unwrap(), u(80_000_000));
        assert_eq!(green_energy_reward(100).unwrap(), u(100_000_000));
        assert_eq!(
            green_energy_reward(101),
            Err(BillingError::GreenShareOutOfRange(101))
        );
    }

    #[test]
    fn compute_follows_the_seed_formula() {
        let region = Region {
            high_demand: true,
            high_demand_cost: u(50_000),
            cpu_cost: u(100),
            memory_cost: u(100),
            gpu_cost: U256::ZERO,
        };
        let usage = ComputeUsage {
            cpu_usage: u(500),
            memory_usage: u(2_000),
            cluster_cpu_usage: u(4_000),
            cluster_memory_usage: u(16_000),
            cpu_base_rate: u(12),
            memory_base_rate: u(10),
            green_energy_percent: 20,
        };
        // cpu: 500e3/4000 = 125 -> 125e8 + 12e5; ram: 2000e3/16000 = 125 -> 125e8 + 10e5
        let expected = (u(125 * TOKEN + 1_200_000) + u(125 * TOKEN + 1_000_000) + u(50_000)
            - u(20_000_000))
            / u(1_000);
        assert_eq!(compute_credits(&region, &usage).unwrap(), expected);
    }

    #[test]
    fn compute_below_regional_cost_is_free_and_zero_cluster_usage_is_an_error() {
        let region = Region {
            cpu_cost: u(1_000_000),
            memory_cost: u(1_000_000),
            ..Region::default()
        };
        let usage = ComputeUsage {
            cpu_usage: u(10),
            memory_usage: u(10),
            ..ComputeUsage::default()
        };
        assert_eq!(compute_credits(&region, &usage).unwrap(), U256::ZERO);
        let busy = ComputeUsage {
            cpu_usage: u(10_000),
            ..usage
        };
        assert_eq!(
            compute_credits(&region, &busy),
            Err(BillingError::ZeroClusterUsage)
        );
    }

    #[test]
    fn gpu_hour_at_full_fraction_costs_the_hour_price_plus_region() {
        let region = Region {
            gpu_cost: u(7),
            ..Region::default()
        };
        let one_hour = machine_learning_credits(&region, u(3_600), u(FULL_GPU), u(TOKEN)).unwrap();
        assert_eq!(one_hour, u(TOKEN + 7));
        let half = machine_learning_credits(&region, u(3_600), u(FULL_GPU / 2), u(TOKEN)).unwrap();
        assert_eq!(half, u(TOKEN / 2 + 7));
        assert!(matches!(
            machine_learning_credits(&region, u(1), u(FULL_GPU + 1), u(TOKEN)),
            Err(BillingError::UsageFractionOutOfRange(_))
        ));
    }

    #[test]
    fn rewards() {
        assert_eq!(dataset_reward(), u(10 * TOKEN));
        assert_eq!(registration_reward(false), u(5 * TOKEN));
        assert_eq!(registration_reward(true), u(10 * TOKEN));
    }
}
