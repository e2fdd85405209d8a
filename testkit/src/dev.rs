//! Participants and contracts on a development chain without the HTTP flow, for the benchmarks
//! and tests that need many of them: the participant's own key signs exactly what it signs through
//! the SDK, and the broker's relayer sends it, as in production.

use alloy::primitives::{keccak256, Address, Signature, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use contracts::purchase::PurchaseTerms;
use contracts::{eip712, CreditToken, Marketplace, ParticipantRegistry};
use ledger::{ChainClient, ClientError, Deployment};

/// Far enough in the future for any test run.
const DEADLINE: u64 = u64::MAX / 2;

fn sign_err(e: impl std::fmt::Display) -> ClientError {
    ClientError::Build(e.to_string())
}

fn read_err(relayer: &ChainClient, e: alloy::contract::Error) -> ClientError {
    ClientError::Unreachable {
        url: relayer.url().to_string(),
        reason: e.to_string(),
    }
}

/// Links `who` to `did` with `role` (1 provider, 2 consumer) on chain, relayed by `relayer`.
pub async fn register(
    relayer: &ChainClient,
    d: &Deployment,
    who: &PrivateKeySigner,
    did: &str,
    role: u8,
) -> Result<(), ClientError> {
    let registry = ParticipantRegistry::new(d.contracts.participant_registry, relayer.provider());
    let nonce = registry
        .nonces(who.address())
        .call()
        .await
        .map_err(|e| read_err(relayer, e))?;
    let link = eip712::Link {
        did: did.into(),
        account: who.address(),
        role,
        nonce,
        deadline: U256::from(DEADLINE),
    };
    let domain = eip712::registry_domain(d.chain_id, d.contracts.participant_registry);
    let signature = eip712::sign(who, &link, &domain).map_err(sign_err)?;
    let call = ParticipantRegistry::registerCall {
        did: did.to_string(),
        account: who.address(),
        role,
        deadline: U256::from(DEADLINE),
        signature,
    };
    relayer
        .send_call(d.contracts.participant_registry, &call)
        .await
        .map(|_| ())
}

/// Opens a pay-per-use contract `name` from `consumer` to `provider` with `deposit` in escrow
/// (the consumer's OpenContract and permit signatures, relayed in one transaction).
pub async fn open_contract(
    relayer: &ChainClient,
    d: &Deployment,
    consumer: &PrivateKeySigner,
    provider: Address,
    name: &str,
    deposit: u64,
) -> Result<B256, ClientError> {
    let id = keccak256(name.as_bytes());
    let terms = (
        keccak256(id),
        format!("bafkrei{name}"),
        format!("bafkrei{name}-signatures"),
    );
    open_contract_with(relayer, d, consumer, provider, id, terms, deposit).await
}

/// Opens contract `id` as `open_contract` does, with the given terms hash, document CID and
/// signatures envelope CID.
pub async fn open_contract_with(
    relayer: &ChainClient,
    d: &Deployment,
    consumer: &PrivateKeySigner,
    provider: Address,
    id: B256,
    (terms_hash, terms_cid, signatures_cid): (B256, String, String),
    deposit: u64,
) -> Result<B256, ClientError> {
    let token = CreditToken::new(d.contracts.credit_token, relayer.provider());
    let permit_nonce = token
        .nonces(consumer.address())
        .call()
        .await
        .map_err(|e| read_err(relayer, e))?;
    let terms = PurchaseTerms {
        chain_id: d.chain_id,
        marketplace: d.contracts.marketplace,
        token: d.contracts.credit_token,
        contract_id: id,
        consumer: consumer.address(),
        provider,
        terms_hash,
        terms_cid,
        deposit: U256::from(deposit),
        period_price: U256::ZERO,
        period: 0,
        prices: Default::default(),
        // Usage of up to the whole deposit per hour.
        usage_cap: U256::from(deposit),
        cap_window: 3600,
        deadline: U256::from(DEADLINE),
        permit_nonce,
    };
    let open = eip712::sign(consumer, &terms.open_message(), &terms.marketplace_domain())
        .map_err(sign_err)?;
    let permit =
        eip712::sign(consumer, &terms.permit_message(), &terms.token_domain()).map_err(sign_err)?;
    let permit = Signature::try_from(permit.as_ref()).map_err(sign_err)?;
    let call = Marketplace::openWithPermitCall {
        req: terms.open_request(),
        consumerSig: open,
        signaturesCid: signatures_cid,
        permitDeadline: terms.deadline,
        v: 27 + u8::from(permit.v()),
        r: permit.r().into(),
        s: permit.s().into(),
    };
    relayer.send_call(d.contracts.marketplace, &call).await?;
    Ok(id)
}
