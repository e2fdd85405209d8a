//! What a settlement leaf commits to about a usage record, as `UsageSettlement` hashes it, and the
//! price ceiling a challenge checks the leaf's amount against (the Rust twin of
//! `UsageSettlement.priceCeiling`).

use alloy::primitives::{keccak256, B256, U256};
use alloy::sol_types::SolValue;

use alloy::sol_types::SolStruct;

use crate::bindings::UsageSettlement::UsageRecord;
use crate::eip712::UsagePrices;

/// keccak-256 of `abi.encode(contractId, record)`.
pub fn record_hash(contract: B256, r: &UsageRecord) -> B256 {
    keccak256((contract, r.clone()).abi_encode())
}

/// keccak-256 of a record id, as the leaf's `recordId`.
pub fn record_id_hash(id: &str) -> B256 {
    keccak256(id.as_bytes())
}

/// The most a record can cost at `p` (saturating where Solidity would revert on overflow).
pub fn price_ceiling(r: &UsageRecord, p: &UsagePrices) -> U256 {
    let hour_ms = U256::from(3_600_000u64);
    let u = U256::from;
    let cpu = p.cpuCoreHour.saturating_mul(u(r.cpuMillis)) / hour_ms;
    let mem = p
        .memoryGibHour
        .saturating_mul(u(r.maxMemoryKib) * u(r.connectionMillis))
        / (U256::from(1024u64 * 1024) * hour_ms);
    let gpu = if r.gpuMillis == 0 {
        U256::ZERO
    } else {
        (u(r.gpuMillis) * U256::from(100_000u64)).saturating_mul(p.gpuHour)
            / U256::from(360_000_000_000u64)
            + p.gpuRecordFee
    };
    let net =
        p.networkGb.saturating_mul(u(r.bytesIn) + u(r.bytesOut)) / U256::from(1_000_000_000u64);
    let data = p.dataAccess.saturating_mul(u(r.dataAccesses));
    cpu.saturating_add(mem)
        .saturating_add(gpu)
        .saturating_add(net)
        .saturating_add(data)
}

/// The contracts a settlement transaction skipped (its `ChargeSkipped` events), in order.
pub fn skipped_charges(receipt: &alloy::rpc::types::TransactionReceipt) -> Vec<B256> {
    receipt
        .inner
        .logs()
        .iter()
        .filter_map(|l| {
            l.log_decode::<crate::bindings::UsageSettlement::ChargeSkipped>()
                .ok()
        })
        .map(|e| e.inner.data.contractId)
        .collect()
}

/// EIP-712 struct hash of unit prices (`Marketplace.hashPrices`).
pub fn prices_hash(p: &UsagePrices) -> B256 {
    p.eip712_hash_struct()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> UsageRecord {
        UsageRecord {
            recordId: record_id_hash("r"),
            bodyHash: keccak256("body"),
            from: 100,
            to: 109,
            connectionMillis: 10_000,
            bytesIn: 1_000_000,
            bytesOut: 1_000_000,
            cpuMillis: 20_000,
            maxMemoryKib: 1024 * 1024,
            gpuMillis: 0,
            dataAccesses: 0,
        }
    }

    #[test]
    fn the_ceiling_adds_every_component_at_the_signed_prices() {
        let p = UsagePrices {
            cpuCoreHour: U256::from(3_600_000u64),
            memoryGibHour: U256::from(7_200_000u64),
            gpuHour: U256::from(10_000_000u64),
            networkGb: U256::from(1_000_000u64),
            dataAccess: U256::from(500u64),
            gpuRecordFee: U256::from(77u64),
        };
        let mut r = record();
        assert_eq!(price_ceiling(&r, &p), U256::from(20_000 + 20_000 + 2_000));
        r.gpuMillis = 1_800_000;
        r.dataAccesses = 3;
        assert_eq!(
            price_ceiling(&r, &p),
            U256::from(42_000 + 5_000_000 + 77 + 1_500)
        );
        assert_ne!(
            record_hash(B256::ZERO, &r),
            record_hash(B256::repeat_byte(1), &r)
        );
    }
}
