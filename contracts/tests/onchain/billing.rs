use alloy::primitives::U256;
use contracts::billing::{self, ComputeUsage, Region};
use contracts::BillingModels::{self, BillingModelsErrors as E};
use rand::{Rng, SeedableRng};

use crate::common::*;

fn seed() -> u64 {
    std::env::var("MERCATO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

fn amount(rng: &mut impl Rng) -> U256 {
    match rng.gen_range(0..10) {
        0 => U256::ZERO,
        1 => U256::MAX - U256::from(rng.gen::<u32>()),
        2 => U256::from(rng.gen::<u128>()),
        _ => U256::from(rng.gen_range(0u64..10_000_000)),
    }
}

#[tokio::test]
async fn rust_and_solidity_price_the_same_random_usage() {
    let c = Chain::start().await;
    let b = BillingModels::new(c.d().contracts.billing_models, c.admin.client.provider());
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut regions = Vec::new();
    for name in ["eu-west", "eu-central", "us-east"] {
        let r = b.region(name.into()).call().await.unwrap();
        regions.push((
            name,
            Region {
                high_demand: r.highDemand,
                high_demand_cost: r.highDemandCost,
                cpu_cost: r.cpuCost,
                memory_cost: r.memoryCost,
                gpu_cost: r.gpuCost,
            },
        ));
    }
    let (mut ok, mut errors) = (0, 0);
    for case in 0..2500 {
        let (name, region) = regions[rng.gen_range(0..regions.len())];
        let u = ComputeUsage {
            cpu_usage: amount(&mut rng),
            memory_usage: amount(&mut rng),
            cluster_cpu_usage: amount(&mut rng),
            cluster_memory_usage: amount(&mut rng),
            cpu_base_rate: amount(&mut rng),
            memory_base_rate: amount(&mut rng),
            green_energy_percent: rng.gen_range(0..=105),
        };
        let rust = billing::compute_credits(&region, &u);
        let chain = b
            .computeCredits(
                name.into(),
                BillingModels::ComputeUsage {
                    cpuUsage: u.cpu_usage,
                    memoryUsage: u.memory_usage,
                    clusterCpuUsage: u.cluster_cpu_usage,
                    clusterMemoryUsage: u.cluster_memory_usage,
                    cpuBaseRate: u.cpu_base_rate,
                    memoryBaseRate: u.memory_base_rate,
                    greenEnergyPercent: u.green_energy_percent,
                },
            )
            .call()
            .await;
        match (&rust, &chain) {
            (Ok(r), Ok(ch)) => {
                assert_eq!(r, ch, "seed {seed} case {case}: {u:?}");
                ok += 1;
            }
            (Err(_), Err(_)) => errors += 1,
            _ => panic!("seed {seed} case {case}: rust {rust:?} vs chain {chain:?} for {u:?}"),
        }

        let (time, fraction, price) = (
            amount(&mut rng),
            U256::from(rng.gen_range(0u64..=110_000_000)),
            amount(&mut rng),
        );
        let rust = billing::machine_learning_credits(&region, time, fraction, price);
        let chain = b
            .machineLearningCredits(name.into(), time, fraction, price)
            .call()
            .await;
        assert_eq!(
            rust.ok(),
            chain.ok(),
            "seed {seed} case {case}: gpu {time} {fraction} {price}"
        );

        let usage = amount(&mut rng);
        let chain = b.networkCredits(usage).call().await.ok();
        assert_eq!(
            billing::network_credits(usage).ok(),
            chain,
            "seed {seed}: network {usage}"
        );
    }
    // Both outcomes were exercised.
    assert!(ok > 50 && errors > 10, "ok {ok} errors {errors}");
    assert_eq!(
        b.datasetReward().call().await.unwrap(),
        billing::dataset_reward()
    );
    for ingress in [false, true] {
        assert_eq!(
            b.registrationReward(ingress).call().await.unwrap(),
            billing::registration_reward(ingress)
        );
    }
}

#[tokio::test]
async fn regions_are_set_by_pricing_admins_and_required() {
    let c = Chain::start().await;
    let addr = c.d().contracts.billing_models;
    let b = BillingModels::new(addr, c.admin.client.provider());
    let set = BillingModels::setRegionCall {
        name: "ap-south".into(),
        highDemand: false,
        highDemandCost: U256::ZERO,
        cpuCost: U256::from(1),
        memoryCost: U256::from(1),
        gpuCost: U256::from(3),
    };
    assert_revert::<E>(c.users[0].call(addr, set.clone()).await, |e| {
        matches!(e, E::AccessControlUnauthorizedAccount(_))
    });
    assert!(!b.isRegionSet("ap-south".into()).call().await.unwrap());
    let err = b
        .machineLearningCredits(
            "ap-south".into(),
            U256::from(1),
            U256::from(1),
            U256::from(1),
        )
        .call()
        .await;
    assert!(err.is_err());
    c.admin.call(addr, set).await.unwrap();
    assert!(b.isRegionSet("ap-south".into()).call().await.unwrap());
    assert_eq!(
        b.machineLearningCredits(
            "ap-south".into(),
            U256::from(3600),
            U256::from(100_000_000u64),
            U256::from(100_000_000u64)
        )
        .call()
        .await
        .unwrap(),
        U256::from(100_000_003u64)
    );
    assert!(b.greenEnergyReward(101).call().await.is_err());
    assert_eq!(
        b.greenEnergyReward(100).call().await.unwrap(),
        U256::from(100_000_000u64)
    );
}
