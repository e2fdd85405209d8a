//! Participants for the marketplace tests: keys, registration, a linked EVM account, credits.

use alloy::signers::local::PrivateKeySigner;
use catalog::model::{Offer, Pricing, ReservedPrice};
use ed25519_dalek::SigningKey;
use sdk::market::{Contract, ReserveRequest};
use sdk::{Client, Session};

pub struct Participant {
    pub session: Session,
    pub evm: PrivateKeySigner,
}

impl Participant {
    /// A new participant with `role`, its account linked on chain; consumers get faucet credits.
    pub async fn new(url: &str, role: &str) -> Self {
        let p = Self::with_account(url, role, PrivateKeySigner::random()).await;
        if role == "consumer" {
            p.session.faucet().await.unwrap();
        }
        p
    }

    /// A participant whose account is `evm` (a funded development account, say).
    pub async fn with_account(url: &str, role: &str, evm: PrivateKeySigner) -> Self {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let session = Session::new(Client::new(url).unwrap(), key);
        session.register(role).await.unwrap();
        session.link_account(&evm).await.unwrap();
        Self { session, evm }
    }

    /// A participant on development account `index` (funded with credits at deployment).
    pub async fn new_funded(url: &str, role: &str, index: u32) -> Self {
        let evm = ledger::accounts::dev_signer(index).unwrap();
        Self::with_account(url, role, evm).await
    }

    /// The same participant talking to another broker URL.
    pub fn reconnect(self, url: &str) -> Self {
        Self {
            session: Session::new(Client::new(url).unwrap(), self.session.key().clone()),
            evm: self.evm,
        }
    }

    pub fn did(&self) -> String {
        self.session.did()
    }

    pub async fn credits(&self) -> u128 {
        let info = self.session.account(self.evm.address()).await.unwrap();
        info.credits.parse().unwrap()
    }
}

pub const PROVIDER_CONFIG: &str = "name: edge-1\nendpoints:\n  - name: api\n    url: https://edge-1.example:8443\npolicies:\n  autoAccept: true\n";

/// A compute offer of `provider` with one reserved plan: `capacity` units at `price` per hour.
pub fn offer(id: &str, capacity: u32, price: u64) -> Offer {
    let mut o = catalog::synth::Generator::new(7, 1, false).offer(id, 1);
    o.plans.truncate(1);
    o.plans[0].capacity = capacity;
    // One unit: one core and 1 GiB, so up to 16 units fit the generated offer's resources.
    o.plans[0].unit = catalog::model::PlanUnit {
        cpu_millicores: 1000,
        memory_mib: 1024,
        ..Default::default()
    };
    o.plans[0].pricing = Pricing {
        reserved: Some(ReservedPrice {
            price,
            period_seconds: 3600,
        }),
        pay_per_use: None,
    };
    o.availability = Default::default();
    // Prices in the tests are exact; the green reward is tested on its own.
    o.green_energy_percent = 0;
    o
}

/// `offer` with one pay-per-use plan charging `network_gb` base units per GB of traffic.
pub fn ppu_offer(id: &str, capacity: u32, network_gb: u64) -> Offer {
    let mut o = offer(id, capacity, 1);
    o.plans[0].pricing = Pricing {
        reserved: None,
        pay_per_use: Some(catalog::model::UnitPrices {
            network_gb,
            ..Default::default()
        }),
    };
    o
}

pub fn request(offer: &Offer, quantity: u32) -> ReserveRequest {
    ReserveRequest {
        offer_id: offer.id.clone(),
        plan_id: offer.plans[0].id.clone(),
        quantity,
        periods: None,
        deposit: None,
    }
}

/// Reserves, purchases, and has the provider accept; returns the contract once final.
pub async fn buy(consumer: &Participant, provider: &Participant, req: &ReserveRequest) -> Contract {
    let r = consumer.session.reserve(req).await.unwrap();
    let c = consumer
        .session
        .purchase(req, &r, &consumer.evm, &format!("k-{}", r.id))
        .await
        .unwrap();
    provider.session.accept(&c.id).await.unwrap();
    until_final(consumer, &c.id).await
}

/// Reserves and purchases where the provider's agent accepts by its policy.
pub async fn buy_by_policy(consumer: &Participant, req: &ReserveRequest) -> Contract {
    let r = consumer.session.reserve(req).await.unwrap();
    let c = consumer
        .session
        .purchase(req, &r, &consumer.evm, &format!("k-{}", r.id))
        .await
        .unwrap();
    until_final(consumer, &c.id).await
}

/// The contract once it is active, failed or closed.
pub async fn until_final(consumer: &Participant, id: &str) -> Contract {
    until(consumer, id, Contract::is_final).await
}

/// The contract once it is closed.
pub async fn until_closed(consumer: &Participant, id: &str) -> Contract {
    until(consumer, id, |c| c.state == "closed").await
}

async fn until(consumer: &Participant, id: &str, done: impl Fn(&Contract) -> bool) -> Contract {
    consumer
        .session
        .wait_contract(id, done, |_| {}, std::time::Duration::from_secs(60))
        .await
        .unwrap()
}
