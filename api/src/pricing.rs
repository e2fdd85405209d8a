//! What a usage record costs: the plan's pay-per-use prices with the NEMO MOCA billing models,
//! capped by the prices the consumer signed. Pure; the broker prices each record it accepts with
//! it, and an auditor re-prices every settled record with the same code.

use alloy::primitives::U256;
use catalog::model::Plan;

use crate::document::ContractDocument;
use crate::usage::UsageRecord;

/// What a record's price depends on besides the record itself.
#[derive(Debug, Clone, Default)]
pub struct PricingContext {
    /// The offer's green-energy share: its reward lowers each charge.
    pub green_percent: u8,
    /// Added to each record with GPU use: the region's GPU cost as the consumer signed it.
    pub gpu_record_fee: u128,
    /// Traffic of the contract's earlier records, for the free allowance.
    pub bytes_before: u128,
}

/// The charge for a record, in credit base units, with the NEMO billing models where they apply:
/// CPU and memory at the plan's prices, GPU time × fraction at the GPU-hour price plus the
/// region's GPU cost (`machine_learning_credits`), traffic beyond the plan's free allowance,
/// dataset accesses (the provider's reward), less the green-energy reward. Reserved plans are
/// paid per period instead, so their usage is recorded at zero. Never above what the consumer's
/// signed prices give for the record (`UsageSettlement.priceCeiling`), which a challenge on
/// chain checks; without a signed bound, zero.
pub fn charge(r: &UsageRecord, doc: &ContractDocument, ctx: &PricingContext) -> u128 {
    let Some(bound) = &doc.usage else {
        return 0;
    };
    let ceiling = contracts::usage::price_ceiling(&r.leaf(), &(&bound.prices.chain()).into());
    price(r, &doc.plan, ctx).min(ceiling.saturating_to::<u128>())
}

/// The plan's price for a record (see `charge`).
pub fn price(r: &UsageRecord, plan: &Plan, ctx: &PricingContext) -> u128 {
    use contracts::billing;
    let Some(p) = &plan.pricing.pay_per_use else {
        return 0;
    };
    const HOUR_MS: u128 = 3_600_000;
    let cpu = p.cpu_core_hour.base_units() * u128::from(r.cpu_millis) / HOUR_MS;
    // GiB-hours: peak memory over the connection time.
    let mem = p.memory_gib_hour.base_units()
        * u128::from(r.max_memory_kib)
        * u128::from(r.connection_millis)
        / (1024 * 1024 * HOUR_MS);
    let gpu = if r.gpu_millis > 0 {
        // GPU-milliseconds × 10^5 is GPU-seconds × the 10^8 fraction scale the model uses.
        let region = billing::Region {
            gpu_cost: U256::from(ctx.gpu_record_fee),
            ..Default::default()
        };
        billing::machine_learning_credits(
            &region,
            U256::from(r.gpu_millis),
            U256::from(billing::FULL_GPU / 1000),
            U256::from(p.gpu_hour.base_units()),
        )
        .map_or(u128::MAX, |v| v.saturating_to::<u128>())
    } else {
        0
    };
    let bytes = u128::from(r.bytes_in) + u128::from(r.bytes_out);
    let free = u128::from(p.free_network_gb) * 1_000_000_000;
    let billable = (ctx.bytes_before + bytes)
        .saturating_sub(free.max(ctx.bytes_before))
        .min(bytes);
    let net = p.network_gb.base_units() * billable / 1_000_000_000;
    let data = p.data_access.base_units() * u128::from(r.data_accesses);
    let gross = cpu
        .saturating_add(mem)
        .saturating_add(gpu)
        .saturating_add(net)
        .saturating_add(data);
    // NEMO subtracts the reward before its final /1000 scaling; the same here.
    let reward = billing::green_energy_reward(ctx.green_percent.min(100))
        .map_or(0, |v| v.saturating_to::<u128>())
        / 1000;
    gross.saturating_sub(reward)
}
