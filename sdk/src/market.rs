//! The marketplace for a logged-in participant: link an EVM account, register a provider
//! configuration, publish offers, reserve and buy, accept, list and close contracts, top up,
//! follow usage. Everything the participant authorises is signed here, with its own keys, after
//! checking it is what was asked for; the broker only relays.

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::SolStruct;
use api::contracts::{AcceptRequest, ContractListQuery, EscrowView, TopUpRequest, ToppedUp};
use api::document::{self, ContractDocument, Parties, Party};
use api::ledger::{
    AccountInfo, FaucetGrant, LinkRequest, Linked, RelayRequest, Relayed, TxFees, TxTerms,
    TxTermsRequest,
};
use api::offers::{Published, WithdrawnOffer};
use api::providers::{ConfigRegistered, ConfigRequest};
use api::reservations::{PurchaseRequest, Reservation, ReserveRequest};
use api::usage::{
    ContractUsage, DisputeRequest, Disputed, RecordOutcome, ResolveRequest, Statement, UsageProof,
    UsageRecord, UsageReport,
};
use api::{
    ContentId, Contract, ContractId, ContractState, Credits, Ed25519Signature, EvmSignature,
    OfferId, UsageRecordId,
};
use catalog::model::Offer;
use contracts::eip712;
use reqwest::Method;

use crate::client::{Body, SdkError};
use crate::session::{now, Session};

/// Deadline for signatures the broker relays right away.
const SIGNATURE_TTL_SECS: u64 = 600;
/// How far the document's issue time may be from this machine's clock.
const ISSUE_SKEW_SECS: u64 = 300;
/// Longest a purchase's signatures may stay usable.
const MAX_PURCHASE_WINDOW_SECS: u64 = 24 * 3600;

fn sign_typed<T: SolStruct>(
    signer: &PrivateKeySigner,
    message: &T,
    domain: &alloy::sol_types::Eip712Domain,
) -> Result<EvmSignature, SdkError> {
    let bytes = eip712::sign(signer, message, domain).map_err(|e| SdkError::Sign(e.to_string()))?;
    EvmSignature::try_from(bytes).map_err(|e| SdkError::Sign(e.to_string()))
}

fn mismatch(what: impl std::fmt::Display) -> SdkError {
    SdkError::Mismatch(format!(
        "the broker's reservation does not match what was asked ({what})"
    ))
}

fn is<T: PartialEq>(what: &str, got: &T, want: &T) -> Result<(), SdkError> {
    if got == want {
        Ok(())
    } else {
        Err(mismatch(what))
    }
}

impl Session {
    pub async fn account(&self, account: Address) -> Result<AccountInfo, SdkError> {
        self.call(Method::GET, &format!("/v1/accounts/{account}"), Body::None)
            .await
    }

    /// What a registry signature of `evm` needs: the domain, the account's nonce, a deadline.
    async fn registry_terms(
        &self,
        evm: &PrivateKeySigner,
    ) -> Result<(alloy::sol_types::Eip712Domain, U256, u64), SdkError> {
        let ledger = self.client.ledger().await?;
        let info = self.account(evm.address()).await?;
        Ok((
            eip712::registry_domain(ledger.chain_id, ledger.contracts.participant_registry),
            info.registry_nonce.0,
            now() + SIGNATURE_TTL_SECS,
        ))
    }

    /// Links `evm`'s account to this did on chain (the account signs its consent).
    pub async fn link_account(&self, evm: &PrivateKeySigner) -> Result<Linked, SdkError> {
        let me = self.me().await?;
        let (domain, nonce, deadline) = self.registry_terms(evm).await?;
        let link = eip712::Link {
            did: self.did().to_string(),
            account: evm.address(),
            role: me.role.chain_number(),
            nonce,
            deadline: U256::from(deadline),
        };
        let req = LinkRequest {
            account: evm.address(),
            deadline,
            signature: sign_typed(evm, &link, &domain)?,
        };
        self.call(
            Method::POST,
            "/v1/participants/me/account",
            Body::json(&req)?,
        )
        .await
    }

    /// Development chains: credits for the linked account.
    pub async fn faucet(&self) -> Result<FaucetGrant, SdkError> {
        self.call(Method::POST, "/v1/faucet", Body::None).await
    }

    /// Registers a provider configuration: the CID is computed here and signed by the account.
    pub async fn register_config(
        &self,
        evm: &PrivateKeySigner,
        config: &str,
    ) -> Result<ConfigRegistered, SdkError> {
        let cid = ContentId::from(content::unixfs::cid_of(config.as_bytes()));
        let (domain, nonce, deadline) = self.registry_terms(evm).await?;
        let message = eip712::SetConfig {
            account: evm.address(),
            cid: cid.to_string(),
            nonce,
            deadline: U256::from(deadline),
        };
        let req = ConfigRequest {
            config: config.to_string(),
            cid,
            deadline,
            signature: sign_typed(evm, &message, &domain)?,
        };
        self.call(Method::POST, "/v1/providers/me/config", Body::json(&req)?)
            .await
    }

    /// Publishes `offer` as this provider's: the next version of it if it exists, signed.
    pub async fn publish_offer(&self, mut offer: Offer) -> Result<Published, SdkError> {
        let id: OfferId = offer
            .id
            .parse()
            .map_err(|e: api::IdError| SdkError::Mismatch(e.to_string()))?;
        offer.provider = self.did().to_string();
        offer.version = match self.client.offer(&id).await {
            Ok(current) => current.offer.version + 1,
            Err(SdkError::Api { status: 404, .. }) => 1,
            Err(e) => return Err(e),
        };
        offer.sign(&self.key);
        let body = serde_json::to_vec(&offer).map_err(|e| SdkError::Decode(e.to_string()))?;
        let token = self.token().await?;
        self.client
            .call(
                Method::POST,
                "/v1/offers",
                Body::Raw(&body),
                Some(&token),
                &[],
            )
            .await
    }

    pub async fn withdraw_offer(&self, id: &OfferId) -> Result<WithdrawnOffer, SdkError> {
        self.call(
            Method::POST,
            &format!("/v1/offers/{id}/withdraw"),
            Body::None,
        )
        .await
    }

    pub async fn reserve(&self, req: &ReserveRequest) -> Result<Reservation, SdkError> {
        self.call(Method::POST, "/v1/reservations", Body::json(req)?)
            .await
    }

    /// Checks every field of the reservation's document and terms against what was asked, the
    /// offer, this participant and the chain's accounts: the document is rebuilt from them with the
    /// broker's own pure function and must be equal; then signs and buys. The answer comes before
    /// the chain confirms: follow it with `wait_contract`.
    pub async fn purchase(
        &self,
        asked: &ReserveRequest,
        r: &Reservation,
        evm: &PrivateKeySigner,
        idempotency_key: &str,
    ) -> Result<Contract, SdkError> {
        self.check_reservation(asked, r, evm).await?;
        let (open_digest, permit_digest) = r.terms.chain().digests();
        let sign = |d| -> Result<EvmSignature, SdkError> {
            evm.sign_hash_sync(&d)
                .map(EvmSignature::from)
                .map_err(|e| SdkError::Sign(e.to_string()))
        };
        let req = PurchaseRequest {
            document_signature: Ed25519Signature::sign(
                &self.key,
                identity::Domain::ContractDocument,
                r.document.as_bytes(),
            ),
            open_signature: sign(open_digest)?,
            permit_signature: sign(permit_digest)?,
        };
        let token = self.token().await?;
        self.client
            .call(
                Method::POST,
                &format!("/v1/reservations/{}/purchase", r.id),
                Body::json(&req)?,
                Some(&token),
                &[("idempotency-key", idempotency_key)],
            )
            .await
    }

    async fn check_reservation(
        &self,
        asked: &ReserveRequest,
        r: &Reservation,
        evm: &PrivateKeySigner,
    ) -> Result<(), SdkError> {
        let doc = ContractDocument::parse(r.document.as_bytes())
            .map_err(|e| mismatch(format!("the document is not a contract document: {e}")))?;
        let t = &r.terms;
        let ledger = self.client.ledger().await?;
        let offer = self.client.offer(&asked.offer_id).await?.offer;
        let provider_did: api::Did = offer
            .provider
            .parse()
            .map_err(|_| mismatch("the offer's provider is not a did:key"))?;
        // The provider's account is the one linked to the offer's provider on chain.
        let provider_account = self.account(t.provider).await?;
        is(
            "provider account",
            &provider_account.did,
            &Some(provider_did.clone()),
        )?;
        let config_cid = match self.client.provider_config(&provider_did).await {
            Ok(c) => Some(c.cid),
            Err(SdkError::Api { status: 404, .. }) => None,
            Err(e) => return Err(e),
        };
        if doc.issued_at.abs_diff(now()) > ISSUE_SKEW_SECS {
            return Err(mismatch("issued at a time far from now"));
        }
        let expected = document::build(
            &offer,
            asked,
            Parties {
                contract_id: r.id.contract(),
                chain_id: ledger.chain_id,
                marketplace: ledger.contracts.marketplace,
                consumer: Party {
                    did: self.did().clone(),
                    account: evm.address(),
                },
                provider: Party {
                    did: provider_did,
                    account: t.provider,
                },
                provider_config_cid: config_cid,
                // The region's GPU cost comes from BillingModels on chain, which the SDK does
                // not read; it is shown with the terms and bounded by the cap like every price.
                gpu_record_fee: doc
                    .usage
                    .map_or(api::Credits::ZERO, |u| u.prices.gpu_record_fee),
                now: doc.issued_at,
            },
        )
        .map_err(|e| mismatch(e.to_string()))?;
        is("contract document", &doc, &expected)?;
        // The terms the account signs commit to exactly these bytes and amounts.
        let info = self.account(evm.address()).await?;
        is("chain", &t.chain_id, &ledger.chain_id)?;
        is("marketplace", &t.marketplace, &ledger.contracts.marketplace)?;
        is("token", &t.token, &ledger.contracts.credit_token)?;
        is("contract id", &t.contract_id, &r.id.contract())?;
        is("consumer account", &t.consumer, &evm.address())?;
        is(
            "terms hash",
            &t.terms_hash.0,
            &ContractDocument::terms_hash(r.document.as_bytes()),
        )?;
        is(
            "terms CID",
            &t.terms_cid,
            &ContentId::from(content::unixfs::cid_of(r.document.as_bytes())),
        )?;
        is("document CID", &r.document_cid, &t.terms_cid)?;
        is("deposit", &t.deposit, &doc.deposit)?;
        is("period price", &t.period_price, &doc.price.period_price)?;
        is("period", &t.period, &doc.price.period_seconds)?;
        // The usage bound signed on chain is the document's (none: no usage charges at all).
        is(
            "usage prices",
            &t.prices,
            &doc.usage.map(|u| u.prices).unwrap_or_default(),
        )?;
        is(
            "usage cap",
            &t.usage_cap,
            &doc.usage.map_or(api::Credits::ZERO, |u| u.cap),
        )?;
        is(
            "charging window",
            &t.cap_window,
            &doc.usage.map_or(0, |u| u.window_seconds),
        )?;
        // A permit for a nonce the account has not reached could be held and used later; one for
        // a spent nonce is worthless (and is what a retry of a finished purchase carries).
        if t.permit_nonce > info.permit_nonce {
            return Err(mismatch("a permit nonce the account has not reached"));
        }
        let now = now();
        if t.deadline <= now || t.deadline > now + MAX_PURCHASE_WINDOW_SECS {
            return Err(mismatch("a deadline in the past or too far ahead"));
        }
        Ok(())
    }

    pub async fn contract(&self, id: ContractId) -> Result<Contract, SdkError> {
        self.call(Method::GET, &format!("/v1/contracts/{id}"), Body::None)
            .await
    }

    pub async fn contracts(&self) -> Result<Vec<Contract>, SdkError> {
        self.contracts_limited(ContractListQuery::default()).await
    }

    pub async fn contracts_limited(&self, q: ContractListQuery) -> Result<Vec<Contract>, SdkError> {
        let path = match q.limit {
            Some(l) => format!("/v1/contracts?limit={l}"),
            None => "/v1/contracts".into(),
        };
        self.call(Method::GET, &path, Body::None).await
    }

    /// The provider signs a proposed contract's document, after checking it is a contract
    /// document that names this provider for one of its offers.
    pub async fn accept(&self, id: ContractId) -> Result<Contract, SdkError> {
        let c = self.contract(id).await?;
        let document = c
            .document
            .ok_or_else(|| SdkError::Decode("the broker sent no document".into()))?;
        let doc = ContractDocument::parse(document.as_bytes())
            .map_err(|e| SdkError::Mismatch(format!("not a contract document: {e}")))?;
        if doc.provider.did != *self.did() || doc.contract_id != id || doc.offer_id != c.offer_id {
            return Err(SdkError::Mismatch(
                "the document does not name this provider and this contract".into(),
            ));
        }
        let req = AcceptRequest {
            signature: Ed25519Signature::sign(
                &self.key,
                identity::Domain::ContractDocument,
                document.as_bytes(),
            ),
        };
        self.call(
            Method::POST,
            &format!("/v1/contracts/{id}/accept"),
            Body::json(&req)?,
        )
        .await
    }

    pub async fn close(&self, id: ContractId) -> Result<Contract, SdkError> {
        self.call(
            Method::POST,
            &format!("/v1/contracts/{id}/close"),
            Body::None,
        )
        .await
    }

    /// Follows the contract until `done` says so, calling `progress` on each change of state:
    /// woken by the contract's events, with a slow poll as a safety net.
    pub async fn wait_contract(
        &self,
        id: ContractId,
        done: impl Fn(&Contract) -> bool,
        mut progress: impl FnMut(&Contract),
        timeout: std::time::Duration,
    ) -> Result<Contract, SdkError> {
        let start = std::time::Instant::now();
        // Opened before the first look, so no change after it can be missed.
        let mut events = self.events(None).await?;
        let mut last: Option<ContractState> = None;
        let subject = id.to_string();
        loop {
            let c = self.contract(id).await?;
            if last != Some(c.state) {
                last = Some(c.state);
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
                    if e.subject == subject && e.body.contract().is_some() {
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
        records: &[UsageRecord],
    ) -> Result<Vec<RecordOutcome>, SdkError> {
        let report = UsageReport {
            records: records.to_vec(),
        };
        self.call(Method::POST, "/v1/usage", Body::json(&report)?)
            .await
    }

    /// A contract's usage as it accrues, with its total and what is settled.
    pub async fn usage(&self, contract: ContractId) -> Result<ContractUsage, SdkError> {
        self.call(
            Method::GET,
            &format!("/v1/contracts/{contract}/usage"),
            Body::None,
        )
        .await
    }

    /// The proof that a usage record is in its settled batch (and the chain's verdict).
    pub async fn usage_proof(&self, record: &UsageRecordId) -> Result<UsageProof, SdkError> {
        self.call(
            Method::GET,
            &format!("/v1/usage/{record}/proof"),
            Body::None,
        )
        .await
    }

    /// A provider withdraws its earnings (all of them by default) with its own account: a
    /// transaction it signs and sends to the chain the broker names.
    pub async fn withdraw_earnings(
        &self,
        evm: &PrivateKeySigner,
        amount: Option<Credits>,
    ) -> Result<(api::TxHash, Credits), SdkError> {
        let ledger = self.client.ledger().await?;
        let marketplace = ledger.contracts.marketplace;
        let chain = |e: &dyn std::fmt::Display| SdkError::Chain(e.to_string());
        let client = ledger::ChainClient::connect(&ledger.rpc_url, evm.clone())
            .await
            .map_err(|e| chain(&e))?;
        let available = contracts::Marketplace::new(marketplace, client.provider())
            .earnings(evm.address())
            .call()
            .await
            .map_err(|e| chain(&e))?;
        let available = u128::try_from(available)
            .map(Credits::from_base_units)
            .map_err(|_| SdkError::Chain(format!("earnings of {available} base units")))?;
        let amount = amount.unwrap_or(available);
        if amount.is_zero() {
            return Err(SdkError::Chain("there are no earnings to withdraw".into()));
        }
        let receipt = client
            .send_call(
                marketplace,
                &contracts::Marketplace::withdrawCall {
                    to: evm.address(),
                    amount: U256::from(amount.base_units()),
                },
            )
            .await
            .map_err(|e| chain(&e))?;
        Ok((api::TxHash(receipt.transaction_hash), amount))
    }

    /// What a call of `evm`'s own needs (nonce, gas, fees), named by the broker; refused when the
    /// chain would revert it.
    pub async fn transaction_terms(
        &self,
        to: Address,
        data: alloy::primitives::Bytes,
    ) -> Result<TxTerms, SdkError> {
        let req = TxTermsRequest { to, data };
        self.call(
            Method::POST,
            "/v1/chain/transactions/terms",
            Body::json(&req)?,
        )
        .await
    }

    /// Has the broker relay a transaction this participant's account signed, byte for byte.
    pub async fn relay_transaction(
        &self,
        raw: alloy::primitives::Bytes,
    ) -> Result<Relayed, SdkError> {
        self.call(
            Method::POST,
            "/v1/chain/transactions",
            Body::json(&RelayRequest { raw })?,
        )
        .await
    }

    /// Sends a call of `evm`'s own through the broker, for a client that cannot reach the chain's
    /// node: the broker names the terms, `evm` signs here, the broker relays the signed bytes.
    pub async fn send_own(
        &self,
        evm: &PrivateKeySigner,
        to: Address,
        data: alloy::primitives::Bytes,
    ) -> Result<Relayed, SdkError> {
        let terms = self.transaction_terms(to, data.clone()).await?;
        let raw = sign_own(evm, &terms, to, data)?;
        self.relay_transaction(raw).await
    }

    /// A contract's statement, checked against the chain.
    pub async fn statement(&self, contract: ContractId) -> Result<Statement, SdkError> {
        self.call(
            Method::GET,
            &format!("/v1/contracts/{contract}/statement"),
            Body::None,
        )
        .await
    }

    /// A contract's statement as CSV.
    pub async fn statement_csv(&self, contract: ContractId) -> Result<String, SdkError> {
        let token = self.token().await?;
        let bytes = self
            .client
            .read(
                Method::GET,
                &format!("/v1/contracts/{contract}/statement?format=csv"),
                Body::None,
                Some(&token),
                &[],
            )
            .await?;
        String::from_utf8(bytes).map_err(|e| SdkError::Decode(e.to_string()))
    }

    /// How long a contract's escrow lasts (and the nonces a top-up signs).
    pub async fn escrow(&self, contract: ContractId) -> Result<EscrowView, SdkError> {
        self.call(
            Method::GET,
            &format!("/v1/contracts/{contract}/escrow"),
            Body::None,
        )
        .await
    }

    /// Adds `amount` to a contract's escrow: the account signs a TopUp and a permit; the broker
    /// relays both.
    pub async fn top_up(
        &self,
        contract: ContractId,
        evm: &PrivateKeySigner,
        amount: Credits,
    ) -> Result<ToppedUp, SdkError> {
        let info = self.escrow(contract).await?;
        let ledger = self.client.ledger().await?;
        let (marketplace, token) = (ledger.contracts.marketplace, ledger.contracts.credit_token);
        let deadline = now() + SIGNATURE_TTL_SECS;
        let value = U256::from(amount.base_units());
        let top = eip712::TopUp {
            contractId: contract.0,
            amount: value,
            nonce: info.top_up_nonce.0,
            deadline: U256::from(deadline),
        };
        let permit = eip712::Permit {
            owner: evm.address(),
            spender: marketplace,
            value,
            nonce: info.permit_nonce.0,
            deadline: U256::from(deadline),
        };
        let req = TopUpRequest {
            amount,
            deadline,
            top_up_signature: sign_typed(
                evm,
                &top,
                &eip712::marketplace_domain(ledger.chain_id, marketplace),
            )?,
            permit_signature: sign_typed(
                evm,
                &permit,
                &eip712::token_domain(ledger.chain_id, token),
            )?,
        };
        self.call(
            Method::POST,
            &format!("/v1/contracts/{contract}/topup"),
            Body::json(&req)?,
        )
        .await
    }

    /// The consumer disputes a usage record (within the broker's window, before it settles).
    pub async fn dispute_usage(
        &self,
        record: &UsageRecordId,
        reason: &str,
    ) -> Result<Disputed, SdkError> {
        let req = DisputeRequest {
            reason: reason.to_string(),
        };
        self.call(
            Method::POST,
            &format!("/v1/usage/{record}/dispute"),
            Body::json(&req)?,
        )
        .await
    }

    /// An operator decides a dispute: uphold (settles) or void (charged nothing).
    pub async fn resolve_dispute(
        &self,
        record: &UsageRecordId,
        uphold: bool,
    ) -> Result<Disputed, SdkError> {
        self.call(
            Method::POST,
            &format!("/v1/usage/{record}/resolve"),
            Body::json(&ResolveRequest { uphold })?,
        )
        .await
    }
}

/// Signs a call with the terms the broker named, once they are checked to be `evm`'s.
pub fn sign_own(
    evm: &PrivateKeySigner,
    terms: &TxTerms,
    to: Address,
    input: alloy::primitives::Bytes,
) -> Result<alloy::primitives::Bytes, SdkError> {
    use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
    use alloy::eips::eip2718::Encodable2718;
    use alloy::network::TxSignerSync;
    use alloy::primitives::TxKind;
    if terms.from != evm.address() {
        return Err(SdkError::Chain(format!(
            "the broker named account {}, not {}; nothing was signed",
            terms.from,
            evm.address()
        )));
    }
    let wei = |what: &str, v: &str| {
        v.parse::<u128>()
            .map_err(|_| SdkError::Chain(format!("the broker named {what} {v:?}, not wei")))
    };
    let sign_err = |e: alloy::signers::Error| SdkError::Chain(e.to_string());
    let envelope: TxEnvelope = match &terms.fees {
        TxFees::Eip1559 {
            max_fee_per_gas,
            max_priority_fee_per_gas,
        } => {
            let mut tx = TxEip1559 {
                chain_id: terms.chain_id,
                nonce: terms.nonce,
                gas_limit: terms.gas,
                max_fee_per_gas: wei("maxFeePerGas", max_fee_per_gas)?,
                max_priority_fee_per_gas: wei("maxPriorityFeePerGas", max_priority_fee_per_gas)?,
                to: TxKind::Call(to),
                value: U256::ZERO,
                access_list: Default::default(),
                input,
            };
            let signature = evm.sign_transaction_sync(&mut tx).map_err(sign_err)?;
            tx.into_signed(signature).into()
        }
        TxFees::Legacy { gas_price } => {
            let mut tx = TxLegacy {
                chain_id: Some(terms.chain_id),
                nonce: terms.nonce,
                gas_price: wei("gasPrice", gas_price)?,
                gas_limit: terms.gas,
                to: TxKind::Call(to),
                value: U256::ZERO,
                input,
            };
            let signature = evm.sign_transaction_sync(&mut tx).map_err(sign_err)?;
            tx.into_signed(signature).into()
        }
    };
    Ok(envelope.encoded_2718().into())
}
