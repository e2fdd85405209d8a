//! A participant's own transactions, relayed. A page cannot reach the chain's node (its content
//! policy allows the broker only), so it asks the broker for the terms (nonce, gas, fees), signs
//! the transaction in the browser with its account, and the broker broadcasts the signed bytes as
//! they are. The broker cannot change what they do (any change voids the signature) and pays
//! nothing: the account pays its gas. It refuses what is not the caller's linked account calling
//! one of the deployment's contracts on this chain, with no native currency attached.

use alloy::consensus::{Transaction, TxEnvelope};
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::Address;
use api::ledger::{RelayRequest, Relayed, TxFees, TxTerms, TxTermsRequest, MAX_RELAYED_TX_BYTES};
use api::{Principal, TxHash};
use ledger::client::Fees;
use ledger::ClientError;

use super::{Market, MarketError};
use crate::ledger_link::ChainError;

const NOT_OURS: &str = "only calls to the marketplace's own contracts are relayed";

/// What a signed transaction must be for the broker to relay it.
#[derive(Debug, Clone, Copy)]
pub struct RelayRules<'a> {
    pub account: Address,
    pub chain_id: u64,
    pub contracts: &'a [Address],
}

/// The transaction decoded and checked against `rules`; why not, in words, otherwise.
pub fn check_signed(raw: &[u8], rules: RelayRules<'_>) -> Result<TxEnvelope, MarketError> {
    let bad = |why: String| MarketError::BadRequest(why);
    if raw.len() > MAX_RELAYED_TX_BYTES {
        return Err(bad(format!(
            "the transaction is {} bytes; at most {MAX_RELAYED_TX_BYTES} are relayed",
            raw.len()
        )));
    }
    let mut rest = raw;
    let tx = TxEnvelope::decode_2718(&mut rest)
        .map_err(|e| bad(format!("not a signed transaction (EIP-2718 bytes): {e}")))?;
    if !rest.is_empty() {
        return Err(bad("bytes follow the transaction".into()));
    }
    let signer = tx
        .signature()
        .recover_address_from_prehash(&tx.signature_hash())
        .map_err(|_| bad("the transaction's signature recovers no account".into()))?;
    if signer != rules.account {
        return Err(MarketError::Forbidden(format!(
            "the transaction is signed by {signer}, not by your linked account {}; sign it with that account's key",
            rules.account
        )));
    }
    if tx.chain_id() != Some(rules.chain_id) {
        return Err(bad(format!(
            "the transaction is for chain {:?}, not this chain ({}); ask for the terms again",
            tx.chain_id(),
            rules.chain_id
        )));
    }
    if !tx.to().is_some_and(|to| rules.contracts.contains(&to)) {
        return Err(bad(NOT_OURS.into()));
    }
    if !tx.value().is_zero() {
        return Err(bad(
            "a relayed transaction carries no native currency".into()
        ));
    }
    Ok(tx)
}

impl Market {
    fn deployment_contracts(&self) -> Vec<Address> {
        self.ledger
            .deployment
            .contracts
            .all()
            .iter()
            .map(|(_, a)| *a)
            .collect()
    }

    /// The nonce, gas and fees of a call the caller's account will sign; refused when the chain
    /// would revert it (so nothing is signed in vain).
    pub async fn tx_terms(
        &self,
        who: &Principal,
        req: &TxTermsRequest,
    ) -> Result<TxTerms, MarketError> {
        let from = self.linked_account(&who.did).await?;
        if !self.deployment_contracts().contains(&req.to) {
            return Err(MarketError::BadRequest(NOT_OURS.into()));
        }
        let (nonce, gas, fees) = self
            .ledger
            .client
            .terms_for(from, req.to, req.data.clone())
            .await
            .map_err(|e| match ChainError::from(e) {
                e if e.is_revert() => MarketError::Refused {
                    title: "the chain would refuse this transaction",
                    detail: format!(
                        "the chain would refuse this transaction: {}; nothing was signed or sent",
                        e.refusal()
                    ),
                },
                e => e.into(),
            })?;
        Ok(TxTerms {
            chain_id: self.ledger.deployment.chain_id,
            from,
            nonce,
            gas,
            fees: match fees {
                Fees::Eip1559 { max_fee, tip } => TxFees::Eip1559 {
                    max_fee_per_gas: max_fee.to_string(),
                    max_priority_fee_per_gas: tip.to_string(),
                },
                Fees::Legacy { gas_price } => TxFees::Legacy {
                    gas_price: gas_price.to_string(),
                },
            },
        })
    }

    /// Broadcasts a transaction the caller's linked account signed and waits until it is mined.
    pub async fn relay(&self, who: &Principal, req: &RelayRequest) -> Result<Relayed, MarketError> {
        let account = self.linked_account(&who.did).await?;
        let contracts = self.deployment_contracts();
        check_signed(
            &req.raw,
            RelayRules {
                account,
                chain_id: self.ledger.deployment.chain_id,
                contracts: &contracts,
            },
        )?;
        let receipt = self
            .ledger
            .client
            .relay(req.raw.clone())
            .await
            .map_err(|e| match e {
                ClientError::Failed { hash } => MarketError::Refused {
                    title: "the chain refused the transaction",
                    detail: format!("transaction {hash} was mined but reverted: nothing moved"),
                },
                ClientError::Rejected { message, .. } => MarketError::Refused {
                    title: "the chain refused the transaction",
                    detail: format!("the node refused the transaction ({message}); ask for the terms again and sign again"),
                },
                other => ChainError::from(other).into(),
            })?;
        tracing::info!(did = %who.did, %account, tx = %receipt.transaction_hash, "relayed a participant's transaction");
        Ok(Relayed {
            tx_hash: TxHash(receipt.transaction_hash),
            block_number: receipt.block_number.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::consensus::{SignableTransaction, TxEip1559};
    use alloy::eips::eip2718::Encodable2718;
    use alloy::network::TxSignerSync;
    use alloy::primitives::{Bytes, TxKind, U256};
    use alloy::signers::local::PrivateKeySigner;

    fn signed(key: &PrivateKeySigner, chain_id: u64, to: Address, value: u64) -> Vec<u8> {
        let mut tx = TxEip1559 {
            chain_id,
            nonce: 0,
            gas_limit: 100_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(to),
            value: U256::from(value),
            access_list: Default::default(),
            input: Bytes::from_static(&[1, 2, 3, 4]),
        };
        let signature = key.sign_transaction_sync(&mut tx).unwrap();
        TxEnvelope::from(tx.into_signed(signature)).encoded_2718()
    }

    #[test]
    fn only_the_callers_own_calls_to_the_contracts_on_this_chain_are_relayed() {
        let key = PrivateKeySigner::random();
        let market = Address::repeat_byte(7);
        let contracts = [market];
        let rules = RelayRules {
            account: key.address(),
            chain_id: 31337,
            contracts: &contracts,
        };
        assert!(check_signed(&signed(&key, 31337, market, 0), rules).is_ok());
        let other = PrivateKeySigner::random();
        let refused = |raw: Vec<u8>| check_signed(&raw, rules).unwrap_err().to_string();
        assert!(refused(signed(&other, 31337, market, 0)).contains("not by your linked account"));
        assert!(refused(signed(&key, 1, market, 0)).contains("not this chain"));
        assert!(refused(signed(&key, 31337, Address::ZERO, 0)).contains("own contracts"));
        assert!(refused(signed(&key, 31337, market, 1)).contains("no native currency"));
        assert!(refused(vec![0x02, 0xff]).contains("not a signed transaction"));
        let mut trailing = signed(&key, 31337, market, 0);
        trailing.push(0);
        assert!(refused(trailing).contains("bytes follow"));
        assert!(refused(vec![0; MAX_RELAYED_TX_BYTES + 1]).contains("at most"));
    }
}
