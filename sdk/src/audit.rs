//! Auditing: the broker's auditor queries (`Session::audit`), and a verification of the whole
//! ledger from the chain and the content store alone (`verify`), which never asks the broker.
//!
//! `verify` reads every event of the deployment's six contracts and checks:
//! - each contract's document, fetched by the CID the chain logged, hashes to the terms hash the
//!   consumer authorised on chain, and names the chain's parties, marketplace, chain and deposit;
//!   the signatures envelope the Marketplace logged for it (`TermsSigned`) carries both parties'
//!   valid signatures of those bytes, by the dids registered for the chain's parties;
//! - each settlement batch's records, fetched by CID: every record is signed by the provider
//!   registered for its contract's provider account, the records (with their amounts) rebuild
//!   the Merkle root on chain, every contract was charged exactly its records' sum, and no record
//!   was charged more than the contract's signed terms price it at;
//! - token conservation: what entered and left the Marketplace by token transfers matches the
//!   Marketplace's own events and its balance; each contract's escrow from its events matches
//!   the chain's; the supply matches what was minted and burned;
//! - every anchored credential's content hashes to its anchor and its proof verifies;
//! - every provider configuration CID resolves.
//!
//! Content a store returns is checked against its CID by the store client; other bytes for a CID
//! are named as tampering.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alloy::primitives::{keccak256, Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use api::document::{ContractDocument, SignedDocument};
use api::pricing::{charge, PricingContext};
use api::usage::BatchDocument;
use content::{Cid, ContentError, ContentStore};
use contracts::events::{period_ref, LedgerEvent, Source};
use contracts::{CreditToken, Marketplace};
use ledger::Deployment;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::session::Session;
use crate::SdkError;

impl Session {
    /// An auditor query (`GET /v1/audit/{what}` with `query`), as JSON.
    pub async fn audit<Q: Serialize, T: DeserializeOwned>(
        &self,
        what: &str,
        query: &Q,
    ) -> Result<T, SdkError> {
        let path = audit_path(what, query)?;
        self.call(reqwest::Method::GET, &path, crate::client::Body::None)
            .await
    }

    /// The same query as CSV.
    pub async fn audit_csv<Q: Serialize>(&self, what: &str, query: &Q) -> Result<String, SdkError> {
        let token = self.token().await?;
        let path = audit_path(what, query)?;
        let sep = if path.contains('?') { '&' } else { '?' };
        let bytes = self
            .client()
            .read(
                reqwest::Method::GET,
                &format!("{path}{sep}format=csv"),
                crate::client::Body::None,
                Some(&token),
                &[],
            )
            .await?;
        String::from_utf8(bytes).map_err(|e| SdkError::Decode(e.to_string()))
    }
}

/// The query of an auditor endpoint that takes none.
pub const NO_QUERY: &[(&str, &str)] = &[];

fn audit_path<Q: Serialize>(what: &str, query: &Q) -> Result<String, SdkError> {
    let q = serde_urlencoded::to_string(query).map_err(|e| SdkError::Decode(e.to_string()))?;
    Ok(if q.is_empty() {
        format!("/v1/audit/{what}")
    } else {
        format!("/v1/audit/{what}?{q}")
    })
}

/// What the verification reads.
pub struct Sources {
    pub rpc_url: String,
    /// The deployment (`deployment.json`): the chain id and the six addresses.
    pub deployment: Deployment,
    pub content: Arc<dyn ContentStore>,
    /// Start here instead of the deployment block (conservation is then not checked).
    pub from_block: Option<u64>,
}

/// Why the verification could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the RPC URL serves chain {got}, but the deployment is on chain {expected}; use the deployment's chain")]
    WrongChain { expected: u64, got: u64 },
    #[error("no Mercato Marketplace at {0} on this chain: wrong deployment file or RPC URL")]
    NoDeployment(Address),
    #[error("the chain at {url}: {reason}")]
    Chain { url: String, reason: String },
    #[error("the content store: {0}")]
    Content(String),
}

/// Which check found a difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// A contract's document.
    Document,
    /// A settlement batch's records (signature, presence, count).
    Record,
    /// A record charged more than its contract's signed terms price it at.
    Overcharge,
    /// A batch's Merkle root against its records.
    Root,
    /// A contract's charge in a batch against its records.
    Charge,
    /// Token conservation and escrow.
    Conservation,
    Credential,
    Configuration,
    /// A content store that returned other bytes than the CID names.
    Tampering,
}

/// One difference, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub check: Check,
    /// What it is about (a contract, a batch, a record, a credential, a CID).
    pub subject: String,
    pub detail: String,
    pub block: Option<u64>,
}

/// What was verified, and every difference found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub chain_id: u64,
    pub from_block: u64,
    pub through_block: u64,
    pub events: u64,
    pub contracts: u64,
    pub batches: u64,
    pub records: u64,
    pub credentials: u64,
    pub configurations: u64,
    /// What a verification from the chain and the content store cannot know.
    pub not_checked: Vec<String>,
    pub differences: Vec<Difference>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Where a long verification is.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    /// Blocks read of the range.
    Logs { read: u64, total: u64 },
    /// Content items checked of those to check.
    Content { done: u64, total: u64 },
}

/// The largest document the verification fetches.
const MAX_CONTENT: usize = 64 * 1024 * 1024;
const RANGE: u64 = 2_000;

struct Logged {
    block: u64,
    event: LedgerEvent,
}

struct Opened {
    consumer: Address,
    provider: Address,
    terms_hash: B256,
    terms_cid: String,
    deposit: U256,
    block: u64,
    /// Where both parties' signatures are kept (the `TermsSigned` event of the opening).
    signatures_cid: Option<String>,
}

/// Verifies the ledger from the chain and the content store alone.
pub async fn verify(s: &Sources, progress: &(dyn Fn(Stage) + Sync)) -> Result<Report, VerifyError> {
    let chain_err = |e: String| VerifyError::Chain {
        url: s.rpc_url.clone(),
        reason: e,
    };
    let url: url::Url = s
        .rpc_url
        .parse()
        .map_err(|e| chain_err(format!("not a URL: {e}")))?;
    let provider = ProviderBuilder::new().connect_http(url);
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|e| chain_err(e.to_string()))?;
    let d = &s.deployment;
    if chain_id != d.chain_id {
        return Err(VerifyError::WrongChain {
            expected: d.chain_id,
            got: chain_id,
        });
    }
    let code = provider
        .get_code_at(d.contracts.marketplace)
        .await
        .map_err(|e| chain_err(e.to_string()))?;
    if code.is_empty() {
        return Err(VerifyError::NoDeployment(d.contracts.marketplace));
    }
    let head = provider
        .get_block_number()
        .await
        .map_err(|e| chain_err(e.to_string()))?;
    let from = s
        .from_block
        .unwrap_or(d.deployment_block)
        .max(d.deployment_block);
    let whole = from == d.deployment_block;
    let sources: [(Address, Source); 6] = [
        (d.contracts.credit_token, Source::Token),
        (d.contracts.participant_registry, Source::Registry),
        (d.contracts.marketplace, Source::Marketplace),
        (d.contracts.billing_models, Source::Billing),
        (d.contracts.usage_settlement, Source::Settlement),
        (d.contracts.credential_registry, Source::Credentials),
    ];
    let addresses: Vec<Address> = sources.iter().map(|(a, _)| *a).collect();

    // Every event, in chain order.
    let mut logged = Vec::new();
    let mut next = from;
    while next <= head {
        let to = (next + RANGE - 1).min(head);
        let filter = alloy::rpc::types::Filter::new()
            .address(addresses.clone())
            .from_block(next)
            .to_block(to);
        let logs = provider
            .get_logs(&filter)
            .await
            .map_err(|e| chain_err(e.to_string()))?;
        for log in logs {
            let source = sources
                .iter()
                .find(|(a, _)| *a == log.address())
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    chain_err(format!("a log of {} in the filter's answer", log.address()))
                })?;
            let event = LedgerEvent::decode(source, log.topics(), &log.data().data)
                .map_err(|e| chain_err(e.to_string()))?;
            logged.push(Logged {
                block: log.block_number.unwrap_or_default(),
                event,
            });
        }
        progress(Stage::Logs {
            read: to + 1 - from,
            total: head + 1 - from,
        });
        next = to + 1;
    }

    let mut report = Report {
        chain_id,
        from_block: from,
        through_block: head,
        events: logged.len() as u64,
        contracts: 0,
        batches: 0,
        records: 0,
        credentials: 0,
        configurations: 0,
        not_checked: vec![
            "records not settled yet, and disputed records, which the chain never saw".into(),
            "the free network allowance where records of a contract reached the broker in another order than they settled".into(),
        ],
        differences: Vec::new(),
    };
    if !whole {
        report.not_checked.push(format!(
            "token conservation and escrow: the verification started at block {from}, after the deployment"
        ));
    }
    let mut diffs: Vec<Difference> = Vec::new();
    let mut differ = |check, subject: String, detail: String, block: Option<u64>| {
        diffs.push(Difference {
            check,
            subject,
            detail,
            block,
        })
    };

    // What the events say.
    let mut dids: HashMap<Address, String> = HashMap::new();
    let mut opened: BTreeMap<B256, Opened> = BTreeMap::new();
    let mut charged: HashMap<(B256, B256), U256> = HashMap::new();
    let mut batches = Vec::new();
    let mut anchors = Vec::new();
    let mut configs = Vec::new();
    for l in &logged {
        match &l.event {
            LedgerEvent::ParticipantRegistered { account, did, .. } => {
                dids.insert(*account, did.clone());
            }
            LedgerEvent::ContractOpened {
                contract,
                consumer,
                provider,
                terms_hash,
                terms_cid,
                deposit,
                ..
            } => {
                opened.insert(
                    *contract,
                    Opened {
                        consumer: *consumer,
                        provider: *provider,
                        terms_hash: *terms_hash,
                        terms_cid: terms_cid.clone(),
                        deposit: *deposit,
                        block: l.block,
                        signatures_cid: None,
                    },
                );
            }
            LedgerEvent::TermsSigned {
                contract,
                signatures_cid,
            } => {
                if let Some(o) = opened.get_mut(contract) {
                    o.signatures_cid = Some(signatures_cid.clone());
                }
            }
            LedgerEvent::Charged {
                contract,
                reference,
                amount,
                ..
            } if *reference != period_ref() => {
                *charged.entry((*reference, *contract)).or_default() += *amount;
            }
            LedgerEvent::BatchSettled {
                batch,
                root,
                records_cid,
                record_count,
                ..
            } => batches.push((*batch, *root, records_cid.clone(), *record_count, l.block)),
            LedgerEvent::CredentialAnchored { hash, cid, .. } => {
                anchors.push((*hash, cid.clone(), l.block))
            }
            LedgerEvent::ConfigUpdated {
                account,
                version,
                cid,
            } => configs.push((*account, *version, cid.clone(), l.block)),
            _ => {}
        }
    }
    report.contracts = opened.len() as u64;
    report.batches = batches.len() as u64;
    report.credentials = anchors.len() as u64;
    report.configurations = configs.len() as u64;
    let total = (opened.len() + batches.len() + anchors.len() + configs.len()) as u64;
    let mut done = 0u64;
    let tick = |done: &mut u64| {
        *done += 1;
        if (*done).is_multiple_of(50) || *done == total {
            progress(Stage::Content { done: *done, total });
        }
    };

    // Contract documents.
    let mut documents: HashMap<B256, ContractDocument> = HashMap::new();
    for (id, o) in &opened {
        tick(&mut done);
        let subject = format!("contract {id}");
        let bytes = match fetch(&*s.content, &o.terms_cid).await {
            Ok(b) => b,
            Err(Fetch::Missing(why)) => {
                differ(Check::Document, subject, why, Some(o.block));
                continue;
            }
            Err(Fetch::Tampered(why)) => {
                differ(Check::Tampering, subject, why, Some(o.block));
                continue;
            }
            Err(Fetch::Unavailable(e)) => return Err(VerifyError::Content(e)),
        };
        if keccak256(&bytes) != o.terms_hash {
            differ(
                Check::Document,
                subject,
                format!(
                    "the document under {} hashes to {}, but the consumer authorised terms hash {} on chain: the document changed after signing",
                    o.terms_cid,
                    keccak256(&bytes),
                    o.terms_hash
                ),
                Some(o.block),
            );
            continue;
        }
        let doc = match ContractDocument::parse(&bytes) {
            Ok(doc) => doc,
            Err(e) => {
                differ(
                    Check::Document,
                    subject,
                    format!("not a contract document: {e}"),
                    Some(o.block),
                );
                continue;
            }
        };
        let mut wrong = Vec::new();
        if doc.contract_id.0 != *id {
            wrong.push(format!("its contract id is {}", doc.contract_id));
        }
        if doc.chain_id != chain_id || doc.marketplace != d.contracts.marketplace {
            wrong.push("it names another chain or marketplace".to_string());
        }
        if doc.consumer.account != o.consumer || doc.provider.account != o.provider {
            wrong.push("its parties' accounts are not the chain's".to_string());
        }
        for (party, account) in [(&doc.consumer, o.consumer), (&doc.provider, o.provider)] {
            if dids
                .get(&account)
                .is_some_and(|d| *d != party.did.to_string())
            {
                wrong.push(format!(
                    "{} is not the did registered for {account}",
                    party.did
                ));
            }
        }
        if U256::from(doc.deposit.base_units()) != o.deposit {
            wrong.push(format!(
                "its deposit {} is not the {} escrowed",
                doc.deposit, o.deposit
            ));
        }
        match signature_faults(&*s.content, o, &doc, &bytes).await {
            Ok(faults) => wrong.extend(faults),
            Err(Fetch::Tampered(why)) => {
                differ(Check::Tampering, subject.clone(), why, Some(o.block))
            }
            Err(Fetch::Missing(why) | Fetch::Unavailable(why)) => {
                return Err(VerifyError::Content(why))
            }
        }
        if !wrong.is_empty() {
            differ(Check::Document, subject, wrong.join("; "), Some(o.block));
        }
        documents.insert(*id, doc);
    }

    // Settlement batches.
    let mut traffic: HashMap<B256, u128> = HashMap::new();
    for (batch, root, cid, count, block) in &batches {
        tick(&mut done);
        let subject = format!("batch {batch}");
        let bytes = match fetch(&*s.content, cid).await {
            Ok(b) => b,
            Err(Fetch::Missing(why)) => {
                differ(
                    Check::Record,
                    subject,
                    format!("its records are missing: {why}"),
                    Some(*block),
                );
                continue;
            }
            Err(Fetch::Tampered(why)) => {
                differ(Check::Tampering, subject, why, Some(*block));
                continue;
            }
            Err(Fetch::Unavailable(e)) => return Err(VerifyError::Content(e)),
        };
        let doc: BatchDocument = match serde_json::from_slice(&bytes) {
            Ok(doc) => doc,
            Err(e) => {
                differ(
                    Check::Record,
                    subject,
                    format!("{cid} is not a batch document: {e}"),
                    Some(*block),
                );
                continue;
            }
        };
        report.records += doc.records.len() as u64;
        if doc.kind != BatchDocument::KIND || doc.batch.0 != *batch {
            differ(
                Check::Record,
                subject.clone(),
                format!("{cid} is the document of another batch"),
                Some(*block),
            );
        }
        if doc.records.len() != *count as usize {
            differ(
                Check::Record,
                subject.clone(),
                format!(
                    "the chain logged {count} records, {cid} holds {}",
                    doc.records.len()
                ),
                Some(*block),
            );
        }
        let mut parsed = Vec::with_capacity(doc.records.len());
        for (i, e) in doc.records.iter().enumerate() {
            match e.parse() {
                Ok(r) => parsed.push((r, e.amount)),
                Err(err) => differ(
                    Check::Record,
                    subject.clone(),
                    format!("entry {i} of {cid} is not a usage record: {err}"),
                    Some(*block),
                ),
            }
        }
        if parsed.len() == doc.records.len() {
            match BatchDocument::tree_of(&parsed) {
                Ok(tree) if tree.root() == *root => {}
                Ok(tree) => differ(
                    Check::Root,
                    subject.clone(),
                    format!(
                        "its records and amounts build root {}, the chain settled root {root}",
                        tree.root()
                    ),
                    Some(*block),
                ),
                Err(e) => differ(Check::Root, subject.clone(), e.to_string(), Some(*block)),
            }
        }
        let mut sums: BTreeMap<B256, U256> = BTreeMap::new();
        for (r, amount) in &parsed {
            let rsub = format!("record {} of contract {}", r.id, r.contract);
            *sums.entry(r.contract.0).or_default() += U256::from(amount.base_units());
            let Some(o) = opened.get(&r.contract.0) else {
                differ(
                    Check::Record,
                    rsub,
                    "its contract was never opened on chain".into(),
                    Some(*block),
                );
                continue;
            };
            let registered = dids.get(&o.provider);
            if registered != Some(&r.provider.to_string()) || !r.verify() {
                differ(
                    Check::Record,
                    rsub.clone(),
                    format!(
                        "not signed by the contract's provider ({})",
                        registered.map_or("no did registered", String::as_str)
                    ),
                    Some(*block),
                );
            }
            let Some(terms) = documents.get(&r.contract.0) else {
                continue; // its document's difference is already named
            };
            let before = traffic.entry(r.contract.0).or_default();
            let ctx = PricingContext {
                green_percent: terms.green_energy_percent,
                gpu_record_fee: terms
                    .usage
                    .map_or(0, |u| u.prices.gpu_record_fee.base_units()),
                bytes_before: *before,
            };
            *before += u128::from(r.bytes_in) + u128::from(r.bytes_out);
            let price = charge(r, terms, &ctx);
            if amount.base_units() > price {
                differ(
                    Check::Overcharge,
                    rsub,
                    format!(
                        "charged {} base units; the contract's signed terms price it at {price}",
                        amount.base_units()
                    ),
                    Some(*block),
                );
            }
        }
        for (contract, sum) in &sums {
            let got = charged
                .get(&(*batch, *contract))
                .copied()
                .unwrap_or_default();
            if got > *sum {
                differ(
                    Check::Charge,
                    format!("contract {contract} in batch {batch}"),
                    format!("charged {got} base units for records that add up to {sum}"),
                    Some(*block),
                );
            }
        }
        for ((b, contract), got) in &charged {
            if b == batch && !sums.contains_key(contract) {
                differ(
                    Check::Charge,
                    format!("contract {contract} in batch {batch}"),
                    format!("charged {got} base units without a record in the batch"),
                    Some(*block),
                );
            }
        }
    }

    // Anchored credentials.
    for (hash, cid, block) in &anchors {
        tick(&mut done);
        let subject = format!("credential {hash}");
        let bytes = match fetch(&*s.content, cid).await {
            Ok(b) => b,
            Err(Fetch::Missing(why)) => {
                differ(Check::Credential, subject, why, Some(*block));
                continue;
            }
            Err(Fetch::Tampered(why)) => {
                differ(Check::Tampering, subject, why, Some(*block));
                continue;
            }
            Err(Fetch::Unavailable(e)) => return Err(VerifyError::Content(e)),
        };
        let doc: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                differ(
                    Check::Credential,
                    subject,
                    format!("{cid} is not JSON: {e}"),
                    Some(*block),
                );
                continue;
            }
        };
        // Its proof, at a time within its validity (an old credential may have expired since).
        let at = serde_json::from_value::<certify::Credential>(doc.clone())
            .ok()
            .and_then(|c| c.valid_from_secs())
            .unwrap_or(0);
        match certify::verify::verify(&doc, &[], at).await {
            Ok(v) if B256::from(v.hash) == *hash => {}
            Ok(v) => differ(
                Check::Credential,
                subject,
                format!(
                    "the content under {cid} hashes to {}, not to its anchor",
                    B256::from(v.hash)
                ),
                Some(*block),
            ),
            Err(e) => differ(
                Check::Credential,
                subject,
                format!("{} check failed: {e}", e.check()),
                Some(*block),
            ),
        }
    }

    // Provider configurations.
    for (account, version, cid, block) in &configs {
        tick(&mut done);
        let subject = format!("configuration {version} of {account}");
        match fetch(&*s.content, cid).await {
            Ok(_) => {}
            Err(Fetch::Missing(why)) => differ(
                Check::Configuration,
                subject,
                format!("does not resolve: {why}"),
                Some(*block),
            ),
            Err(Fetch::Tampered(why)) => differ(Check::Tampering, subject, why, Some(*block)),
            Err(Fetch::Unavailable(e)) => return Err(VerifyError::Content(e)),
        }
    }

    if whole {
        let c = conservation(&provider, d, &logged, head)
            .await
            .map_err(chain_err)?;
        for (subject, detail) in c {
            differ(Check::Conservation, subject, detail, None);
        }
    }
    report.differences = diffs;
    Ok(report)
}

enum Fetch {
    Missing(String),
    Tampered(String),
    Unavailable(String),
}

/// What is wrong with both parties' signatures of a contract's document, from the envelope the
/// chain names (an error only when the envelope cannot be read as it was stored).
async fn signature_faults(
    store: &dyn ContentStore,
    o: &Opened,
    doc: &ContractDocument,
    document: &[u8],
) -> Result<Vec<String>, Fetch> {
    let Some(cid) = &o.signatures_cid else {
        return Ok(vec![
            "the chain names no signatures envelope for it (no TermsSigned event)".into(),
        ]);
    };
    let bytes = match fetch(store, cid).await {
        Ok(b) => b,
        Err(Fetch::Missing(why)) => return Ok(vec![format!("its signatures envelope: {why}")]),
        Err(e) => return Err(e),
    };
    let signed: SignedDocument = match serde_json::from_slice(&bytes) {
        Ok(s) => s,
        Err(e) => {
            return Ok(vec![format!(
                "its signatures envelope {cid} is unreadable: {e}"
            )])
        }
    };
    let mut wrong = Vec::new();
    if signed.document_cid.to_string() != o.terms_cid {
        wrong.push(format!(
            "its signatures envelope is of document {}, not {}",
            signed.document_cid, o.terms_cid
        ));
    }
    for (role, did, signature, party) in [
        (
            "consumer",
            &signed.consumer,
            &signed.consumer_signature,
            &doc.consumer.did,
        ),
        (
            "provider",
            &signed.provider,
            &signed.provider_signature,
            &doc.provider.did,
        ),
    ] {
        if did != party {
            wrong.push(format!("the {role} who signed is {did}, not {party}"));
        } else if let Err(e) = signature.verify(did, identity::Domain::ContractDocument, document) {
            wrong.push(format!(
                "the {role}'s signature of the document is invalid: {e}"
            ));
        }
    }
    Ok(wrong)
}

async fn fetch(store: &dyn ContentStore, cid: &str) -> Result<Vec<u8>, Fetch> {
    let parsed =
        Cid::parse(cid).map_err(|e| Fetch::Missing(format!("{cid:?} is not a CID: {e}")))?;
    match store.get(&parsed, MAX_CONTENT).await {
        Ok(b) => Ok(b),
        Err(ContentError::NotFound(_)) => {
            Err(Fetch::Missing(format!("{cid} is not in the content store")))
        }
        Err(
            e @ (ContentError::Corrupt(_) | ContentError::Mismatch { .. } | ContentError::Node(_)),
        ) => Err(Fetch::Tampered(format!(
            "the content store returned other bytes for {cid}: {e}"
        ))),
        Err(ContentError::Node500 { status, body })
            if body.contains("not found") || status == 404 =>
        {
            Err(Fetch::Missing(format!("{cid} is not in the content store")))
        }
        Err(e) => Err(Fetch::Unavailable(e.to_string())),
    }
}

/// Token conservation over every event since the deployment, and each contract's escrow
/// against the chain's (the differences, named).
async fn conservation<P: Provider + Clone>(
    provider: &P,
    d: &Deployment,
    logged: &[Logged],
    head: u64,
) -> Result<Vec<(String, String)>, String> {
    let market = d.contracts.marketplace;
    let (mut transfers_in, mut transfers_out) = (U256::ZERO, U256::ZERO);
    let (mut minted, mut burned) = (U256::ZERO, U256::ZERO);
    let (mut paid_in, mut paid_out) = (U256::ZERO, U256::ZERO);
    let mut escrow: BTreeMap<B256, (U256, U256, bool)> = BTreeMap::new(); // (in, out, closed)
    for l in logged {
        match &l.event {
            LedgerEvent::Transfer { from, to, value } => {
                if *to == market {
                    transfers_in += *value;
                }
                if *from == market {
                    transfers_out += *value;
                }
                if from.is_zero() {
                    minted += *value;
                }
                if to.is_zero() {
                    burned += *value;
                }
            }
            LedgerEvent::ContractOpened {
                contract, deposit, ..
            } => {
                paid_in += *deposit;
                escrow.entry(*contract).or_default().0 += *deposit;
            }
            LedgerEvent::ToppedUp {
                contract, amount, ..
            } => {
                paid_in += *amount;
                escrow.entry(*contract).or_default().0 += *amount;
            }
            LedgerEvent::Charged {
                contract, amount, ..
            } => escrow.entry(*contract).or_default().1 += *amount,
            LedgerEvent::PeriodRefunded {
                contract, amount, ..
            } => escrow.entry(*contract).or_default().0 += *amount,
            LedgerEvent::OverchargeRefunded {
                contract, amount, ..
            } => {
                let e = escrow.entry(*contract).or_default();
                if e.2 {
                    // After the close: straight to the consumer.
                    paid_out += *amount;
                } else {
                    e.0 += *amount;
                }
            }
            LedgerEvent::ContractClosed {
                contract, refund, ..
            } => {
                paid_out += *refund;
                let e = escrow.entry(*contract).or_default();
                e.1 += *refund;
                e.2 = true;
            }
            LedgerEvent::Withdrawn { amount, .. } | LedgerEvent::FeesWithdrawn { amount, .. } => {
                paid_out += *amount
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    let token = CreditToken::new(d.contracts.credit_token, provider.clone());
    let at = alloy::eips::BlockId::number(head);
    let balance = token
        .balanceOf(market)
        .block(at)
        .call()
        .await
        .map_err(|e| e.to_string())?;
    let supply = token
        .totalSupply()
        .block(at)
        .call()
        .await
        .map_err(|e| e.to_string())?;
    if transfers_in != paid_in {
        out.push((
            "Marketplace".into(),
            format!(
                "tokens transferred in: {transfers_in}; deposits and top-ups logged: {paid_in}"
            ),
        ));
    }
    if transfers_out != paid_out {
        out.push((
            "Marketplace".into(),
            format!("tokens transferred out: {transfers_out}; refunds and withdrawals logged: {paid_out}"),
        ));
    }
    if transfers_in.checked_sub(transfers_out) != Some(balance) {
        out.push((
            "Marketplace".into(),
            format!(
                "holds {balance}; its transfers add up to {transfers_in} in, {transfers_out} out"
            ),
        ));
    }
    if minted.checked_sub(burned) != Some(supply) {
        out.push((
            "CreditToken".into(),
            format!("supply {supply}; minted {minted}, burned {burned}"),
        ));
    }
    let marketplace = Marketplace::new(market, provider.clone());
    for (id, (inflow, outflow, _)) in &escrow {
        let a = marketplace
            .agreement(*id)
            .block(at)
            .call()
            .await
            .map_err(|e| e.to_string())?;
        let expected = inflow.checked_sub(*outflow);
        if expected != Some(a.escrow) {
            out.push((
                format!("contract {id}"),
                format!(
                    "escrow {} on chain; its events add up to {inflow} in, {outflow} out",
                    a.escrow
                ),
            ));
        }
    }
    Ok(out)
}

/// The report in words, one line per difference.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "chain {} blocks {}..={}: {} events, {} contracts, {} batches ({} records), {} credentials, {} configurations\n",
        r.chain_id, r.from_block, r.through_block, r.events, r.contracts, r.batches, r.records, r.credentials, r.configurations
    );
    if r.passed() {
        out.push_str("no differences: the ledger agrees with its documents, records, credentials and configurations\n");
    } else {
        out.push_str(&format!("{} difference(s):\n", r.differences.len()));
        for d in &r.differences {
            let check = serde_json::to_value(d.check)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!(
                "  [{check}] {}{}: {}\n",
                d.subject,
                d.block.map(|b| format!(" (block {b})")).unwrap_or_default(),
                d.detail
            ));
        }
    }
    out.push_str("not checked:\n");
    for n in &r.not_checked {
        out.push_str(&format!("  - {n}\n"));
    }
    out
}
