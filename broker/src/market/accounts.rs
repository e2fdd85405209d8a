//! EVM accounts: a participant links one to its did on chain (ParticipantRegistry), proven by that
//! account's EIP-712 `Link` signature, which the broker relays; what the chain says of an account;
//! the development faucet.

use alloy::primitives::{Address, U256};
use api::events::{AccountLinked, EventBody};
use api::ledger::{AccountInfo, FaucetGrant, LinkRequest, Linked};
use api::{Credits, Nonce, Principal, Role, TxHash};
use contracts::bindings::CreditToken;

use super::{Market, MarketError};
use crate::events::{Audience, Pending};
use crate::store::now;

/// Credits minted per faucet call on a development chain.
pub const FAUCET_CREDITS: Credits = Credits::whole(1_000);
/// Native currency sent with them for gas (1 ether on the dev chain).
pub const FAUCET_GAS_WEI: u128 = 1_000_000_000_000_000_000;

impl Market {
    /// Links the account to the caller's did on chain (relaying the account's signature) and
    /// records it.
    pub async fn link(&self, who: &Principal, req: &LinkRequest) -> Result<Linked, MarketError> {
        if let Some(existing) = self.store.account_of(&who.did).await? {
            return Err(MarketError::Conflict(format!(
                "{} is linked to {existing} already",
                who.did
            )));
        }
        if req.deadline < now() {
            return Err(MarketError::BadRequest(
                "the deadline has passed; sign again".into(),
            ));
        }
        // Linked on chain already (a retry after the broker lost the answer): record it only.
        let (linked_did, _) = self.ledger.linked(req.account).await?;
        let tx = if linked_did == who.did.as_str() {
            None
        } else {
            let sent = self
                .ledger
                .link(
                    who.did.as_str(),
                    req.account,
                    who.role.chain_number(),
                    U256::from(req.deadline),
                    req.signature.bytes().clone(),
                )
                .await
                .map_err(|e| {
                    if e.is_revert() {
                        MarketError::Refused {
                            title: "link refused",
                            detail: format!("the registry refused the link (wrong signature or nonce, account or did taken): {e}"),
                        }
                    } else {
                        e.into()
                    }
                })?;
            Some(TxHash(sent))
        };
        let mut db = self.store.begin().await?;
        self.store
            .set_account(&mut db, &who.did, req.account)
            .await?;
        let event = Pending {
            subject: who.did.to_string(),
            audience: Audience::parties(&[&who.did]),
            body: EventBody::AccountLinked(AccountLinked {
                did: who.did.clone(),
                account: req.account,
                tx_hash: tx,
            }),
        };
        self.commit(db, vec![event], now()).await?;
        Ok(Linked {
            did: who.did.clone(),
            account: req.account,
            tx_hash: tx,
        })
    }

    /// What the chain says of an account: its linked did, credits and the nonces its next
    /// signatures need.
    pub async fn account_info(&self, account: Address) -> Result<AccountInfo, MarketError> {
        let (did, role) = self.ledger.linked(account).await?;
        let unexpected = |what: &'static str, value: String| {
            MarketError::Chain(crate::ledger_link::ChainError::Unexpected { what, value })
        };
        let did = if did.is_empty() {
            None
        } else {
            Some(
                did.parse()
                    .map_err(|_| unexpected("participant.did", did))?,
            )
        };
        let role = match role {
            0 => None,
            n => Some(
                Role::ALL
                    .into_iter()
                    .find(|r| r.chain_number() == n)
                    .ok_or_else(|| unexpected("participant.role", n.to_string()))?,
            ),
        };
        Ok(AccountInfo {
            account,
            did,
            role,
            registry_nonce: Nonce(self.ledger.registry_nonce(account).await?),
            permit_nonce: Nonce(self.ledger.permit_nonce(account).await?),
            credits: self.ledger.credit_balance(account).await?,
            earnings: self.ledger.earnings(account).await?,
        })
    }

    /// Development chains only: mints credits (and gas money) to the caller's linked account.
    pub async fn faucet(&self, who: &Principal) -> Result<FaucetGrant, MarketError> {
        let Some(minter) = &self.faucet else {
            return Err(MarketError::Forbidden(
                "this broker settles on a production chain; it has no faucet".into(),
            ));
        };
        let account = self.linked_account(&who.did).await?;
        let call = CreditToken::mintCall {
            to: account,
            amount: U256::from(FAUCET_CREDITS.base_units()),
        };
        minter
            .send_call(self.ledger.deployment.contracts.credit_token, &call)
            .await?;
        // And gas money, for what the account sends itself (a provider's withdrawal).
        minter
            .send(
                alloy::rpc::types::TransactionRequest::default()
                    .to(account)
                    .value(U256::from(FAUCET_GAS_WEI)),
            )
            .await?;
        Ok(FaucetGrant {
            account,
            minted: FAUCET_CREDITS,
            gas_wei: FAUCET_GAS_WEI.to_string(),
        })
    }
}
