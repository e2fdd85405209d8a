//! Development fixtures on a dev chain, for the benchmarks and tests that need participants and
//! open contracts without going through the HTTP flow: the participant's own key signs exactly
//! what it would sign through the SDK, and the broker relays it as in production.

use alloy::primitives::{keccak256, Address, U256};
use alloy::signers::local::PrivateKeySigner;
use contracts::eip712;
use contracts::purchase::PurchaseTerms;
use ledger::ClientError;

use crate::ledger_link::{LedgerLink, Marketplace, OpenAuthorization};

/// Far enough in the future for any test run.
const DEADLINE: u64 = u64::MAX / 2;

fn sign_err(e: alloy::signers::Error) -> ClientError {
    ClientError::Build(e.to_string())
}

/// Links `who` to `did` with `role` (1 provider, 2 consumer) on chain.
pub async fn register(
    ledger: &LedgerLink,
    who: &PrivateKeySigner,
    did: &str,
    role: u8,
) -> Result<(), ClientError> {
    let link = eip712::Link {
        did: did.into(),
        account: who.address(),
        role,
        nonce: ledger.registry_nonce(who.address()).await?,
        deadline: U256::from(DEADLINE),
    };
    let signature = eip712::sign(who, &link, &ledger.registry_domain()).map_err(sign_err)?;
    ledger
        .link(did, who.address(), role, U256::from(DEADLINE), signature)
        .await
        .map(|_| ())
}

/// Opens a pay-per-use contract `name` from `consumer` to `provider` with `deposit` in escrow
/// (the consumer's OpenContract and permit signatures, relayed in one transaction).
pub async fn open_contract(
    ledger: &LedgerLink,
    consumer: &PrivateKeySigner,
    provider: Address,
    name: &str,
    deposit: u64,
) -> Result<alloy::primitives::B256, ClientError> {
    let id = keccak256(name.as_bytes());
    let d = &ledger.deployment;
    let terms = PurchaseTerms {
        chain_id: d.chain_id,
        marketplace: d.contracts.marketplace,
        token: d.contracts.credit_token,
        contract_id: id,
        consumer: consumer.address(),
        provider,
        terms_hash: keccak256(id),
        terms_cid: format!("bafkrei{name}"),
        deposit: U256::from(deposit),
        period_price: U256::ZERO,
        period: 0,
        deadline: U256::from(DEADLINE),
        permit_nonce: ledger.permit_nonce(consumer.address()).await?,
    };
    let open = eip712::sign(consumer, &terms.open_message(), &terms.marketplace_domain())
        .map_err(sign_err)?;
    let permit =
        eip712::sign(consumer, &terms.permit_message(), &terms.token_domain()).map_err(sign_err)?;
    let permit = alloy::primitives::Signature::try_from(permit.as_ref())
        .map_err(|e| ClientError::Build(e.to_string()))?;
    ledger
        .open(&OpenAuthorization {
            request: Marketplace::OpenRequest {
                contractId: id,
                consumer: terms.consumer,
                provider,
                termsHash: terms.terms_hash,
                termsCid: terms.terms_cid.clone(),
                deposit: terms.deposit,
                periodPrice: U256::ZERO,
                period: 0,
                deadline: terms.deadline,
            },
            open_signature: open,
            permit_deadline: terms.deadline,
            permit_signature: permit,
        })
        .await?;
    Ok(id)
}
