//! Participants for the marketplace tests: keys, registration, a linked EVM account, credits;
//! offers and requests to buy them.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use api::reservations::ReserveRequest;
use api::{Contract, ContractId, ContractState, Credits, Did, Role};
use catalog::model::{Offer, Pricing, ReservedPrice};
use sdk::{Client, Session};

use crate::openapi::Recorder;

pub struct Participant {
    pub session: Session,
    pub evm: PrivateKeySigner,
}

/// A client for `url`, recording every answer when `recorder` is given.
pub fn client(url: &str, recorder: Option<&Recorder>) -> Client {
    let c = Client::new(url).unwrap();
    match recorder {
        Some(r) => r.attach(c),
        None => c,
    }
}

impl Participant {
    /// A new participant with `role`, its account linked on chain; consumers get faucet credits.
    pub async fn new(url: &str, role: Role) -> Self {
        Self::recorded(url, role, None).await
    }

    /// `new`, with every answer recorded for the OpenAPI check.
    pub async fn recorded(url: &str, role: Role, recorder: Option<&Recorder>) -> Self {
        let p =
            Self::with_account_on(client(url, recorder), role, PrivateKeySigner::random()).await;
        if role == Role::Consumer {
            p.session.faucet().await.unwrap();
        }
        p
    }

    /// A participant whose account is `evm` (a funded development account, say).
    pub async fn with_account(url: &str, role: Role, evm: PrivateKeySigner) -> Self {
        Self::with_account_on(client(url, None), role, evm).await
    }

    async fn with_account_on(client: Client, role: Role, evm: PrivateKeySigner) -> Self {
        let session = Session::new(client, identity::generate());
        session.register(role).await.unwrap();
        session.link_account(&evm).await.unwrap();
        Self { session, evm }
    }

    /// A participant on development account `index` (funded with credits at deployment).
    pub async fn new_funded(url: &str, role: Role, index: u32) -> Self {
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

    pub fn did(&self) -> Did {
        self.session.did().clone()
    }

    pub async fn credits(&self) -> Credits {
        self.session
            .account(self.evm.address())
            .await
            .unwrap()
            .credits
    }
}

pub const PROVIDER_CONFIG: &str = "name: edge-1\nendpoints:\n  - name: api\n    url: https://edge-1.example:8443\npolicies:\n  autoAccept: true\n";

/// Base units, for amounts in the tests.
pub fn units(n: u128) -> Credits {
    Credits::from_base_units(n)
}

/// A compute offer with one reserved plan: `capacity` units at `price` base units per hour.
pub fn offer(id: &str, capacity: u32, price: u128) -> Offer {
    let mut o = testkit::synth::Generator::new(7, 1, false).offer(id, 1);
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
            price: units(price),
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
pub fn ppu_offer(id: &str, capacity: u32, network_gb: u128) -> Offer {
    let mut o = offer(id, capacity, 1);
    o.plans[0].pricing = Pricing {
        reserved: None,
        pay_per_use: Some(catalog::model::UnitPrices {
            network_gb: units(network_gb),
            ..Default::default()
        }),
    };
    o
}

pub fn request(offer: &Offer, quantity: u32) -> ReserveRequest {
    ReserveRequest {
        offer_id: offer.id.parse().unwrap(),
        plan_id: offer.plans[0].id.parse().unwrap(),
        quantity,
        periods: None,
        deposit: None,
        usage_cap: None,
        cap_window: None,
        wireguard_key: None,
    }
}

/// Reserves, purchases, and has the provider accept; returns the contract once settled.
pub async fn buy(consumer: &Participant, provider: &Participant, req: &ReserveRequest) -> Contract {
    let r = consumer.session.reserve(req).await.unwrap();
    let c = consumer
        .session
        .purchase(req, &r, &consumer.evm, &format!("k-{}", r.id))
        .await
        .unwrap();
    provider.session.accept(c.id).await.unwrap();
    until_settled(consumer, c.id).await
}

/// Reserves and purchases where the provider's agent accepts by its policy.
pub async fn buy_by_policy(consumer: &Participant, req: &ReserveRequest) -> Contract {
    let r = consumer.session.reserve(req).await.unwrap();
    let c = consumer
        .session
        .purchase(req, &r, &consumer.evm, &format!("k-{}", r.id))
        .await
        .unwrap();
    until_settled(consumer, c.id).await
}

/// The contract once it is active, failed or closed.
pub async fn until_settled(consumer: &Participant, id: ContractId) -> Contract {
    until(consumer, id, |c| c.state.is_settled()).await
}

/// The contract once it is closed.
pub async fn until_closed(consumer: &Participant, id: ContractId) -> Contract {
    until(consumer, id, |c| c.state == ContractState::Closed).await
}

async fn until(
    consumer: &Participant,
    id: ContractId,
    done: impl Fn(&Contract) -> bool,
) -> Contract {
    consumer
        .session
        .wait_contract(id, done, |_| {}, Duration::from_secs(60))
        .await
        .unwrap()
}

/// The hash of the contract's peering credential, once the consumer can fetch it.
pub async fn credential_hash(consumer: &Participant, id: ContractId) -> api::CredentialHash {
    crate::eventually_some(
        "the contract's credential",
        crate::Patience::secs(30),
        || async {
            consumer
                .session
                .credential(id)
                .await
                .ok()
                .map(|cred| cred.hash().parse().unwrap())
        },
    )
    .await
}

/// A usage record the provider signs for `contract`: `bytes` received over the last 5 s.
pub fn signed_usage(
    provider: &Participant,
    consumer: &Did,
    contract: ContractId,
    credential: &api::CredentialHash,
    id: &str,
    bytes: u64,
) -> api::usage::UsageRecord {
    let now = now();
    let mut r = api::usage::UsageRecord {
        id: id.parse().unwrap(),
        contract,
        provider: provider.did(),
        consumer: consumer.clone(),
        credential: credential.clone(),
        from: now - 5,
        to: now,
        connection_millis: 5000,
        bytes_in: bytes,
        bytes_out: 0,
        cpu_millis: 0,
        max_memory_kib: 0,
        gpu_millis: 0,
        data_accesses: 0,
        session: None,
        signature: None,
    };
    r.sign(provider.session.key());
    r
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
