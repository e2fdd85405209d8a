//! The marketplace for a logged-in participant: link an EVM account, register a provider
//! configuration, publish offers, reserve and buy, accept, list and close contracts. Everything
//! the participant authorises is signed here, with its own keys; the broker only relays.

use alloy::primitives::{keccak256, Address, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::SolStruct;
use catalog::model::Offer;
use contracts::eip712;
use contracts::purchase::PurchaseTerms;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::client::SdkError;
use crate::session::{now, Session};

/// What the chain says of an account.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    pub account: Address,
    pub did: String,
    pub role: u8,
    pub registry_nonce: String,
    pub permit_nonce: String,
    pub credits: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reservation {
    pub id: String,
    pub status: String,
    pub offer_id: String,
    pub plan_id: String,
    pub quantity: u32,
    pub expires_at: u64,
    pub document: String,
    pub document_cid: String,
    pub terms: PurchaseTerms,
}

/// A contract as the broker reports it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    pub id: String,
    pub reservation_id: String,
    pub consumer: String,
    pub provider: String,
    pub offer_id: String,
    pub plan_id: String,
    pub quantity: u32,
    pub state: String,
    pub document_cid: String,
    pub signatures_cid: Option<String>,
    pub consumer_signature: String,
    pub provider_signature: Option<String>,
    pub deadline: u64,
    pub tx_hash: Option<String>,
    pub refund: Option<String>,
    pub failure: Option<String>,
    pub created_at: u64,
    pub updated_at: u64,
    #[serde(default)]
    pub document: Option<String>,
    #[serde(default)]
    pub chain: Option<Value>,
}

impl Contract {
    pub fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "active" | "closed" | "failed")
    }
}

pub use catalog::api::ReserveRequest;

/// Deadline for signatures the broker relays right away.
const SIGNATURE_TTL_SECS: u64 = 600;

fn sign_typed<T: SolStruct>(
    signer: &PrivateKeySigner,
    message: &T,
    domain: &alloy::sol_types::Eip712Domain,
) -> Result<Bytes, SdkError> {
    eip712::sign(signer, message, domain).map_err(|e| SdkError::Decode(format!("cannot sign: {e}")))
}

fn parse_u256(s: &str) -> Result<U256, SdkError> {
    s.parse()
        .map_err(|_| SdkError::Decode(format!("not a number: {s}")))
}

fn mismatch(what: &str) -> SdkError {
    SdkError::Decode(format!(
        "the broker's reservation does not match what was asked ({what}); not signing it"
    ))
}

impl Session {
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, SdkError> {
        let token = self.token().await?;
        self.client.request(method, path, body, Some(&token)).await
    }

    pub async fn account(&self, account: Address) -> Result<AccountInfo, SdkError> {
        self.call(Method::GET, &format!("/v1/accounts/{account}"), None)
            .await
    }

    /// What a registry signature of `evm` needs: the domain, the account's nonce, a deadline.
    async fn registry_terms(
        &self,
        evm: &PrivateKeySigner,
    ) -> Result<(alloy::sol_types::Eip712Domain, U256, u64), SdkError> {
        let ledger = self.client.ledger().await?;
        let registry: Address = ledger
            .contracts
            .participant_registry
            .parse()
            .map_err(|_| SdkError::Decode("registry address".into()))?;
        let info = self.account(evm.address()).await?;
        Ok((
            eip712::registry_domain(ledger.chain_id, registry),
            parse_u256(&info.registry_nonce)?,
            now() + SIGNATURE_TTL_SECS,
        ))
    }

    /// Links `evm`'s account to this did on chain (the account signs its consent).
    pub async fn link_account(&self, evm: &PrivateKeySigner) -> Result<Value, SdkError> {
        let me = self.me().await?;
        let role = match me.role.as_str() {
            "provider" => 1,
            "consumer" => 2,
            "auditor" => 3,
            _ => 4,
        };
        let (domain, nonce, deadline) = self.registry_terms(evm).await?;
        let link = eip712::Link {
            did: self.did(),
            account: evm.address(),
            role,
            nonce,
            deadline: U256::from(deadline),
        };
        let signature = sign_typed(evm, &link, &domain)?;
        self.call(
            Method::POST,
            "/v1/participants/me/account",
            Some(json!({"account": evm.address(), "deadline": deadline, "signature": signature})),
        )
        .await
    }

    /// Development chains: credits for the linked account.
    pub async fn faucet(&self) -> Result<Value, SdkError> {
        self.call(Method::POST, "/v1/faucet", None).await
    }

    /// Registers a provider configuration: the CID is computed here and signed by the account.
    pub async fn register_config(
        &self,
        evm: &PrivateKeySigner,
        config: &str,
    ) -> Result<Value, SdkError> {
        let cid = content::unixfs::cid_of(config.as_bytes()).to_string();
        let (domain, nonce, deadline) = self.registry_terms(evm).await?;
        let message = eip712::SetConfig {
            account: evm.address(),
            cid: cid.clone(),
            nonce,
            deadline: U256::from(deadline),
        };
        let signature = sign_typed(evm, &message, &domain)?;
        self.call(
            Method::POST,
            "/v1/providers/me/config",
            Some(
                json!({"config": config, "cid": cid, "deadline": deadline, "signature": signature}),
            ),
        )
        .await
    }

    /// Publishes `offer` as this provider's: the next version of it if it exists, signed.
    pub async fn publish_offer(&self, mut offer: Offer) -> Result<Value, SdkError> {
        offer.provider = self.did();
        offer.version = match self.client.offer(&offer.id).await {
            Ok(current) => current.offer.version + 1,
            Err(SdkError::Api { status: 404, .. }) => 1,
            Err(e) => return Err(e),
        };
        offer.sign(&self.key);
        let body = serde_json::to_value(&offer).map_err(|e| SdkError::Decode(e.to_string()))?;
        self.call(Method::POST, "/v1/offers", Some(body)).await
    }

    pub async fn withdraw_offer(&self, id: &str) -> Result<Value, SdkError> {
        self.call(Method::DELETE, &format!("/v1/offers/{id}"), None)
            .await
    }

    pub async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation, SdkError> {
        let body = serde_json::to_value(req).map_err(|e| SdkError::Decode(e.to_string()))?;
        self.call(Method::POST, "/v1/reservations", Some(body))
            .await
    }

    /// Checks the reservation is what was asked for, signs the document and the terms, and buys.
    /// The answer comes before the chain confirms: follow it with `wait_contract`.
    pub async fn purchase(
        &self,
        asked: &ReserveRequest,
        r: &Reservation,
        evm: &PrivateKeySigner,
        idempotency_key: &str,
    ) -> Result<Contract, SdkError> {
        let doc: Value =
            serde_json::from_str(&r.document).map_err(|_| mismatch("document is not JSON"))?;
        let t = &r.terms;
        if doc["offerId"] != json!(asked.offer_id)
            || doc["plan"]["id"] != json!(asked.plan_id)
            || doc["quantity"] != json!(asked.quantity)
        {
            return Err(mismatch("offer, plan or quantity"));
        }
        if doc["consumer"]["did"] != json!(self.did()) || t.consumer != evm.address() {
            return Err(mismatch("consumer"));
        }
        if doc["contractId"] != json!(t.contract_id.to_string())
            || keccak256(r.document.as_bytes()) != t.terms_hash
            || content::unixfs::cid_of(r.document.as_bytes()).to_string() != t.terms_cid
            || doc["deposit"].as_u64().map(U256::from) != Some(t.deposit)
        {
            return Err(mismatch("terms hash, CID or deposit"));
        }
        if let Some(d) = asked.deposit {
            if U256::from(d) != t.deposit {
                return Err(mismatch("deposit"));
            }
        }
        let (open_digest, permit_digest) = t.digests();
        let sign = |d| {
            evm.sign_hash_sync(&d)
                .map(|s| Bytes::from(s.as_bytes().to_vec()))
                .map_err(|e| SdkError::Decode(format!("cannot sign: {e}")))
        };
        let body = json!({
            "documentSignature": catalog::identity::sign_hex(&self.key, r.document.as_bytes()),
            "openSignature": sign(open_digest)?,
            "permitSignature": sign(permit_digest)?,
        });
        let token = self.token().await?;
        self.client
            .request_with(
                Method::POST,
                &format!("/v1/reservations/{}/purchase", r.id),
                Some(body),
                Some(&token),
                &[("idempotency-key", idempotency_key)],
            )
            .await
    }

    pub async fn contract(&self, id: &str) -> Result<Contract, SdkError> {
        self.call(Method::GET, &format!("/v1/contracts/{id}"), None)
            .await
    }

    pub async fn contracts(&self) -> Result<Vec<Contract>, SdkError> {
        self.call(Method::GET, "/v1/contracts", None).await
    }

    /// The provider signs a proposed contract's document (after checking it names it).
    pub async fn accept(&self, id: &str) -> Result<Contract, SdkError> {
        let c = self.contract(id).await?;
        let document = c
            .document
            .ok_or_else(|| SdkError::Decode("the broker sent no document".into()))?;
        let doc: Value = serde_json::from_str(&document)
            .map_err(|_| SdkError::Decode("the document is not JSON".into()))?;
        if doc["provider"]["did"] != json!(self.did()) {
            return Err(SdkError::Decode(
                "the document does not name this provider; not signing it".into(),
            ));
        }
        let signature = catalog::identity::sign_hex(&self.key, document.as_bytes());
        self.call(
            Method::POST,
            &format!("/v1/contracts/{id}/accept"),
            Some(json!({ "signature": signature })),
        )
        .await
    }

    pub async fn close(&self, id: &str) -> Result<Contract, SdkError> {
        self.call(Method::POST, &format!("/v1/contracts/{id}/close"), None)
            .await
    }

    /// Follows the contract until `done` says so, calling `progress` on each change of state:
    /// woken by the contract's events, with a slow poll as a safety net.
    pub async fn wait_contract(
        &self,
        id: &str,
        done: impl Fn(&Contract) -> bool,
        mut progress: impl FnMut(&Contract),
        timeout: std::time::Duration,
    ) -> Result<Contract, SdkError> {
        let start = std::time::Instant::now();
        // Opened before the first look, so no change after it can be missed.
        let mut events = self.events(None).await?;
        let mut last = String::new();
        loop {
            let c = self.contract(id).await?;
            if c.state != last {
                last = c.state.clone();
                progress(&c);
            }
            if done(&c) {
                return Ok(c);
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(SdkError::Decode(format!(
                    "contract {id} is still {} after {timeout:?}",
                    c.state
                )));
            }
            let pause = left.min(std::time::Duration::from_secs(2));
            // Until an event about this contract, or the safety-net poll.
            let _ = tokio::time::timeout(pause, async {
                while let Ok(Some(e)) = events.next().await {
                    if e.subject == id && e.topic.starts_with("contract.") {
                        return;
                    }
                }
                // The stream ended (token expired): poll.
                tokio::time::sleep(pause).await;
            })
            .await;
        }
    }

    /// Reports usage records (providers' agents); one outcome per record.
    pub async fn report_usage(
        &self,
        records: &[peering::usage::UsageRecord],
    ) -> Result<Vec<Value>, SdkError> {
        self.call(
            Method::POST,
            "/v1/usage",
            Some(json!({ "records": records })),
        )
        .await
    }

    /// A contract's usage as it accrues, with its total and what is settled.
    pub async fn usage(&self, contract: &str) -> Result<Value, SdkError> {
        self.call(
            Method::GET,
            &format!("/v1/contracts/{contract}/usage"),
            None,
        )
        .await
    }

    /// The proof that a usage record is in its settled batch (and the chain's verdict).
    pub async fn usage_proof(&self, record: &str) -> Result<Value, SdkError> {
        self.call(Method::GET, &format!("/v1/usage/{record}/proof"), None)
            .await
    }

    /// A provider withdraws its earnings (all of them by default) with its own account: a
    /// transaction it signs and sends to the chain the broker names.
    pub async fn withdraw_earnings(
        &self,
        evm: &PrivateKeySigner,
        amount: Option<U256>,
    ) -> Result<(String, U256), SdkError> {
        let ledger = self.client.ledger().await?;
        let marketplace: Address = ledger
            .contracts
            .marketplace
            .parse()
            .map_err(|_| SdkError::Decode("marketplace address".into()))?;
        let url = ledger.rpc_url.clone();
        let chain = move |e: ledger::ClientError| SdkError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        };
        let client = ledger::ChainClient::connect(&ledger.rpc_url, evm.clone())
            .await
            .map_err(chain.clone())?;
        let available = contracts::Marketplace::new(marketplace, client.provider())
            .earnings(evm.address())
            .call()
            .await
            .map_err(|e| SdkError::Decode(e.to_string()))?;
        let amount = amount.unwrap_or(available);
        if amount.is_zero() {
            return Err(SdkError::Decode("there are no earnings to withdraw".into()));
        }
        let receipt = client
            .send_call(
                marketplace,
                &contracts::Marketplace::withdrawCall {
                    to: evm.address(),
                    amount,
                },
            )
            .await
            .map_err(chain)?;
        Ok((receipt.transaction_hash.to_string(), amount))
    }

    /// A contract's statement (JSON, or CSV with `csv`).
    pub async fn statement(&self, contract: &str, csv: bool) -> Result<String, SdkError> {
        let token = self.token().await?;
        let path = format!(
            "/v1/contracts/{contract}/statement{}",
            if csv { "?format=csv" } else { "" }
        );
        let resp = self
            .client
            .send(Method::GET, &path, None, Some(&token), &[])
            .await?;
        resp.text()
            .await
            .map_err(|e| SdkError::Decode(e.to_string()))
    }

    /// How long a contract's escrow lasts (and the nonces a top-up signs).
    pub async fn escrow(&self, contract: &str) -> Result<Value, SdkError> {
        self.call(
            Method::GET,
            &format!("/v1/contracts/{contract}/escrow"),
            None,
        )
        .await
    }

    /// Adds `amount` base units to a contract's escrow: the account signs a TopUp and a permit;
    /// the broker relays both.
    pub async fn top_up(
        &self,
        contract: &str,
        evm: &PrivateKeySigner,
        amount: u64,
    ) -> Result<Value, SdkError> {
        let info = self.escrow(contract).await?;
        let ledger = self.client.ledger().await?;
        let addr = |s: &str| -> Result<Address, SdkError> {
            s.parse()
                .map_err(|_| SdkError::Decode(format!("bad address {s}")))
        };
        let (marketplace, token) = (
            addr(&ledger.contracts.marketplace)?,
            addr(&ledger.contracts.credit_token)?,
        );
        let nonce = |k: &str| parse_u256(info[k].as_str().unwrap_or("x"));
        let deadline = now() + SIGNATURE_TTL_SECS;
        let id: alloy::primitives::B256 = contract
            .parse()
            .map_err(|_| SdkError::Decode(format!("{contract} is not a contract id")))?;
        let top = eip712::TopUp {
            contractId: id,
            amount: U256::from(amount),
            nonce: nonce("topUpNonce")?,
            deadline: U256::from(deadline),
        };
        let permit = eip712::Permit {
            owner: evm.address(),
            spender: marketplace,
            value: U256::from(amount),
            nonce: nonce("permitNonce")?,
            deadline: U256::from(deadline),
        };
        let body = json!({
            "amount": amount,
            "deadline": deadline,
            "topUpSignature": sign_typed(evm, &top, &eip712::marketplace_domain(ledger.chain_id, marketplace))?,
            "permitSignature": sign_typed(evm, &permit, &eip712::token_domain(ledger.chain_id, token))?,
        });
        self.call(
            Method::POST,
            &format!("/v1/contracts/{contract}/topup"),
            Some(body),
        )
        .await
    }

    /// The consumer disputes a usage record (within the broker's window, before it settles).
    pub async fn dispute_usage(&self, record: &str, reason: &str) -> Result<Value, SdkError> {
        self.call(
            Method::POST,
            &format!("/v1/usage/{record}/dispute"),
            Some(json!({ "reason": reason })),
        )
        .await
    }

    /// An operator decides a dispute: uphold (settles) or void (charged nothing).
    pub async fn resolve_dispute(&self, record: &str, uphold: bool) -> Result<Value, SdkError> {
        self.call(
            Method::POST,
            &format!("/v1/usage/{record}/resolve"),
            Some(json!({ "uphold": uphold })),
        )
        .await
    }
}
