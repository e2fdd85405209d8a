//! Auditors end to end: after purchases, usage, settlement, a top-up, a close and a certified
//! credential, every auditor query answers from the broker's ledger index and agrees with the
//! chain; `mercato audit verify`, with only the chain and the content store, passes on the honest
//! run and names every fault injected afterwards: an overcharging settlement sent with a settler
//! key, a batch's records missing from the content store, a document that differs from what the
//! consumer authorised, a credential whose content differs from its anchor, a configuration that
//! does not resolve, a content store that returns other bytes, a chain that is not the
//! deployment's.

use std::path::Path;

use alloy::primitives::{keccak256, B256, U256};
use api::audit::*;
use api::usage::{BatchDocument, BatchEntry};
use api::{ContractId, ContractState, Credits, Role, UsageRecordId};
use contracts::bindings::roles;
use contracts::{CredentialRegistry, Marketplace, UsageSettlement};
use e2e::market::{buy_by_policy, ppu_offer, request, units, until_closed, Participant};
use e2e::peer::{provider_with_agent, use_bytes};
use e2e::{eventually, eventually_some, mercato, BrokerProcess, Patience};
use ledger::accounts::dev_signer;
use ledger::ChainClient;
use sdk::audit::{Check, Report};
use serde_json::Value;

fn status_of(e: &sdk::SdkError) -> u16 {
    e.status().unwrap_or(0)
}

/// `mercato audit verify` over the broker's chain and content directory.
fn verify(url: &str, chain: &str, deployment: &Path, content: &Path) -> (bool, Report) {
    let a = mercato(
        url,
        &[
            "--json",
            "audit",
            "verify",
            "--rpc-url",
            chain,
            "--deployment",
            deployment.to_str().unwrap(),
            "--content-dir",
            content.to_str().unwrap(),
        ],
    );
    let report: Report = serde_json::from_str(&a.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}{}", a.stdout, a.stderr));
    (a.ok, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditors_query_the_index_and_verify_the_ledger_from_chain_and_content_alone() {
    let dir = tempfile::tempdir().unwrap();
    let op_key = identity::generate();
    let op_did = identity::did_of(&op_key.verifying_key()).to_string();
    let data = dir.path().join("broker");
    let broker = BrokerProcess::start_with(
        &data,
        &[
            "--settle-interval",
            "1",
            "--dispute-window",
            "0",
            "--probe-interval",
            "2",
            "--operator",
            &op_did,
        ],
    );
    let url = broker.url.clone();
    let client = sdk::Client::new(&url).unwrap();
    let operator = sdk::Session::new(client.clone(), op_key);
    let auditor_key = identity::generate();
    operator.grant(&auditor_key, Role::Auditor).await.unwrap();
    let auditor = sdk::Session::new(client.clone(), auditor_key);

    // The flow: a purchase, usage settled, a top-up, a close; a second contract stays open.
    let agent = provider_with_agent(&url, dir.path(), None, true).await;
    let provider = &agent.provider;
    let consumer = Participant::new(&url, Role::Consumer).await;
    let o = ppu_offer("audit-1", 4, 1_000_000_000);
    provider.session.publish_offer(o.clone()).await.unwrap();
    let buy = |deposit: u128| {
        let (consumer, o) = (&consumer, o.clone());
        async move {
            let mut req = request(&o, 1);
            req.deposit = Some(units(deposit));
            req.usage_cap = Some(units(100_000_000));
            buy_by_policy(consumer, &req).await
        }
    };
    let c = buy(3_000_000).await;
    let credential = consumer.session.credential(c.id).await.unwrap();
    use_bytes(&consumer, &credential, 1_000_000).await;
    eventually("the usage to settle", Patience::secs(30), || async {
        consumer.session.usage(c.id).await.unwrap().settled == units(2_000_000)
    })
    .await;
    consumer
        .session
        .top_up(c.id, &consumer.evm, units(1_000_000))
        .await
        .unwrap();
    consumer.session.close(c.id).await.unwrap();
    let closed = until_closed(&consumer, c.id).await;
    assert_eq!(closed.refund, Some(units(2_000_000)));
    let c2 = buy(5_000_000).await;
    assert_eq!(c2.state, ContractState::Active);
    let certified = eventually_some("a certificate", Patience::secs(60), || async {
        let l = client.certificates(None, false).await.ok()?;
        l.items.into_iter().find(|c| c.anchor_tx.is_some())
    })
    .await;

    // Contracts of the consumer, with what the chain holds.
    let consumer_did = consumer.did().to_string();
    let page: AuditContractPage = auditor
        .audit(
            "contracts",
            &AuditContractsQuery {
                participant: Some(consumer_did.clone()),
                side: Some(Side::Consumer),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2, "{page:?}");
    let first = page.items.iter().find(|i| i.contract_id == c.id).unwrap();
    assert_eq!(first.deposit, units(3_000_000));
    assert_eq!(first.topped_up, units(1_000_000));
    assert_eq!(first.charged, units(2_000_000));
    assert_eq!(first.refunded, units(2_000_000));
    assert_eq!(first.escrow, Credits::ZERO);
    assert_eq!(first.state, LedgerContractState::Closed);
    assert!(first.closed_block.unwrap() > first.opened_block);
    assert_eq!(first.consumer_did.as_ref(), Some(&consumer.did()));
    let second = page.items.iter().find(|i| i.contract_id == c2.id).unwrap();
    let chain = consumer
        .session
        .contract(c2.id)
        .await
        .unwrap()
        .chain
        .unwrap();
    assert_eq!(second.escrow, chain.escrow);
    assert_eq!(second.state, LedgerContractState::Open);
    // By state, and paged.
    let open: AuditContractPage = auditor
        .audit(
            "contracts",
            &AuditContractsQuery {
                state: Some(LedgerContractState::Closed),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        open.items.iter().map(|i| i.contract_id).collect::<Vec<_>>(),
        vec![c.id]
    );
    let one: AuditContractPage = auditor
        .audit(
            "contracts",
            &AuditContractsQuery {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cursor = one.next_cursor.clone().expect("a second page");
    let two: AuditContractPage = auditor
        .audit(
            "contracts",
            &AuditContractsQuery {
                limit: Some(1),
                cursor: Some(cursor.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(one.items[0].contract_id, two.items[0].contract_id);
    let csv = auditor
        .audit_csv("contracts", &AuditContractsQuery::default())
        .await
        .unwrap();
    assert!(csv.starts_with("contract,consumer,provider,"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // Every flow of the consumer's credits, each with its transaction and log index.
    let flows: FlowPage = auditor
        .audit(
            "flows",
            &FlowsQuery {
                participant: consumer_did.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let kinds: Vec<FlowKind> = flows.items.iter().map(|f| f.kind).collect();
    for k in [
        FlowKind::Minted,
        FlowKind::Deposit,
        FlowKind::Charge,
        FlowKind::TopUp,
        FlowKind::Refund,
    ] {
        assert!(kinds.contains(&k), "{k:?} missing from {kinds:?}");
    }
    let deposits: Credits = flows
        .items
        .iter()
        .filter(|f| f.kind == FlowKind::Deposit)
        .map(|f| f.amount)
        .sum();
    assert_eq!(deposits, units(8_000_000));

    // Settlement batches, and a record's proof.
    let batches: SettlementPage = auditor
        .audit(
            "settlements",
            &SettlementsQuery {
                contract: Some(c.id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!batches.items.is_empty());
    let charged: Credits = batches
        .items
        .iter()
        .flat_map(|b| b.charges.iter())
        .filter(|x| x.contract_id == c.id && x.skipped.is_none())
        .map(|x| x.amount)
        .sum();
    assert_eq!(charged, units(2_000_000));
    let usage = consumer.session.usage(c.id).await.unwrap();
    let record: UsageRecordId = usage.records[0].record.id.clone();
    let proof = auditor.usage_proof(&record).await.unwrap();
    assert!(proof.verifies() && proof.verified_on_chain);
    assert!(batches.items.iter().any(|b| b.batch_id == proof.batch));

    // Usage against what was bought: nothing unexplained.
    let u: UsageAuditPage = auditor
        .audit(
            "usage",
            &UsageAuditQuery {
                contract: Some(c.id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.items[0].bought, units(4_000_000));
    assert_eq!(u.items[0].usage_charged, units(2_000_000));
    assert_eq!(u.items[0].unexplained, Credits::ZERO);

    // Credentials, configurations, rankings, earnings.
    let creds: CredentialAuditPage = auditor
        .audit(
            "credentials",
            &CredentialsAuditQuery {
                provider: Some(certified.provider.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(creds
        .items
        .iter()
        .any(|i| i.hash.to_string() == certified.hash && i.cid == certified.cid.to_string()));
    let provider_did = provider.did().to_string();
    let configs: ConfigPage = auditor
        .audit(
            "configs",
            &ConfigsQuery {
                provider: Some(provider_did.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let config = client.provider_config(&provider.did()).await.unwrap();
    assert_eq!(configs.items.last().unwrap().cid, config.cid.to_string());
    assert_eq!(configs.items.last().unwrap().version, config.version);
    let ranking: Ranking = auditor
        .audit("rankings", &RankingsQuery::default())
        .await
        .unwrap();
    assert_eq!(ranking.items[0].did.as_ref(), Some(&provider.did()));
    assert_eq!(ranking.items[0].contracts, 2);
    assert_eq!(ranking.items[0].sales, units(2_000_000));
    let earnings: EarningsReport = auditor
        .audit(
            "earnings",
            &EarningsQuery {
                per: Some(Bucket::Month),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(earnings.rows.iter().all(|r| r.start % 86_400 == 0));

    // The index agrees with the chain.
    let check: SelfCheck = auditor
        .audit("selfcheck", &sdk::audit::NO_QUERY)
        .await
        .unwrap();
    assert!(check.agrees, "{check:?}");
    assert!(check
        .counts
        .iter()
        .any(|c| c.event == "Marketplace.ContractOpened" && c.indexed == 2));

    // Bad input: refused with a reason.
    let e = auditor
        .audit::<_, FlowPage>(
            "flows",
            &FlowsQuery {
                participant: "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), 404, "{e}");
    let e = auditor
        .audit::<_, AuditContractPage>(
            "contracts",
            &AuditContractsQuery {
                from: Some(200),
                to: Some(100),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), 400, "{e}");
    assert!(e.to_string().contains("reversed"), "{e}");
    let e = auditor
        .audit::<_, FlowPage>(
            "flows",
            &FlowsQuery {
                participant: consumer_did.clone(),
                cursor: Some(cursor),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("another query"), "{e}");
    let e = consumer
        .session
        .audit::<_, SelfCheck>("selfcheck", &sdk::audit::NO_QUERY)
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), 403, "{e}");

    // The independent verification: the honest run passes.
    let chain_url = broker.chain_url();
    let deployment = data.join("ledger").join("deployment.json");
    let content = data.join("content");
    let (ok, report) = verify(&url, &chain_url, &deployment, &content);
    assert!(ok && report.differences.is_empty(), "{report:?}");
    assert!(report.contracts >= 2 && report.batches >= 1 && report.credentials >= 1);

    // Faults. An attacker holding the settler, broker and issuer roles (granted by the admin).
    let ledger = client.ledger().await.unwrap();
    let (d, chain_id) = (ledger.contracts, ledger.chain_id);
    let admin = ChainClient::connect(&chain_url, dev_signer(0).unwrap())
        .await
        .unwrap();
    let attacker_key = dev_signer(9).unwrap();
    let attacker = ChainClient::connect(&chain_url, attacker_key.clone())
        .await
        .unwrap();
    for (at, role) in [
        (d.usage_settlement, roles::settler()),
        (d.marketplace, roles::broker()),
        (d.credential_registry, roles::issuer()),
    ] {
        admin
            .send_call(
                at,
                &Marketplace::grantRoleCall {
                    role,
                    account: attacker.address(),
                },
            )
            .await
            .unwrap();
    }
    let store = content::EmbeddedStore::open(&content).unwrap();
    let dep = ledger::Deployment::load(&deployment).unwrap().unwrap();

    // 1. A settlement that charges a record more than its terms price it at.
    let mut forged = usage.records[0].record.clone();
    forged.id = "forged-record-1".parse().unwrap();
    forged.contract = c2.id;
    forged.session = None;
    forged.bytes_in = 10;
    forged.bytes_out = 10;
    forged.sign(provider.session.key());
    let batch = B256::repeat_byte(0xba);
    let doc = BatchDocument::new(
        api::BatchId(batch),
        vec![BatchEntry::new(
            Credits::from_base_units(1_000_000),
            &forged,
        )],
    );
    let cid = store.put(&doc.to_bytes()).await.unwrap();
    attacker
        .send_call(
            d.usage_settlement,
            &UsageSettlement::settleCall {
                batchId: batch,
                merkleRoot: BatchDocument::tree_of(&[(
                    forged.clone(),
                    Credits::from_base_units(1_000_000),
                )])
                .unwrap()
                .root(),
                recordsCid: cid.to_string(),
                recordCount: 1,
                contractIds: vec![c2.id.0],
                amounts: vec![U256::from(1_000_000u64)],
            },
        )
        .await
        .unwrap();

    // 2. An honest batch's records gone from the content store.
    let honest = &batches.items[0];
    std::fs::remove_file(content.join(&honest.records_cid)).unwrap();

    // 3. A contract opened with a document other than the one the consumer authorised.
    let authorised = &second.terms_cid;
    let original = store
        .get(&content::Cid::parse(authorised).unwrap(), 1 << 20)
        .await
        .unwrap();
    let mut changed = api::document::ContractDocument::parse(&original).unwrap();
    changed.deposit = units(1);
    let changed_cid = store.put(&changed.to_bytes()).await.unwrap();
    let forged_id = keccak256(b"forged-contract");
    testkit::dev::open_contract_with(
        &attacker,
        &dep,
        &consumer.evm,
        second.provider,
        forged_id,
        (
            keccak256(&original),
            changed_cid.to_string(),
            "bafkreinoenvelope".to_string(),
        ),
        1_000,
    )
    .await
    .unwrap();

    // 3b. A contract the provider never accepted: the consumer's signature is real, the
    // provider's is made with another key.
    let mut unaccepted = api::document::ContractDocument::parse(&original).unwrap();
    unaccepted.contract_id = ContractId(keccak256(b"unaccepted-contract"));
    let unaccepted_bytes = unaccepted.to_bytes();
    let unaccepted_cid = store.put(&unaccepted_bytes).await.unwrap();
    let sign = |key| {
        api::Ed25519Signature::sign(key, identity::Domain::ContractDocument, &unaccepted_bytes)
    };
    let envelope = api::document::SignedDocument {
        document_cid: unaccepted_cid.into(),
        consumer: unaccepted.consumer.did.clone(),
        consumer_signature: sign(consumer.session.key()),
        provider: unaccepted.provider.did.clone(),
        provider_signature: sign(consumer.session.key()),
    };
    let envelope_cid = store
        .put(&serde_json::to_vec(&envelope).unwrap())
        .await
        .unwrap();
    testkit::dev::open_contract_with(
        &attacker,
        &dep,
        &consumer.evm,
        second.provider,
        unaccepted.contract_id.0,
        (
            keccak256(&unaccepted_bytes),
            unaccepted_cid.to_string(),
            envelope_cid.to_string(),
        ),
        unaccepted.deposit.base_units() as u64,
    )
    .await
    .unwrap();

    // 4. An anchor whose content is another credential.
    let forged_hash = B256::repeat_byte(0x77);
    attacker
        .send_call(
            d.credential_registry,
            &CredentialRegistry::anchorCall {
                credentialHash: forged_hash,
                cid: certified.cid.to_string(),
            },
        )
        .await
        .unwrap();

    // 5. The provider's configuration gone; 6. a document replaced by other bytes.
    std::fs::remove_file(content.join(config.cid.to_string())).unwrap();
    std::fs::write(
        content.join(&first.terms_cid),
        b"{\"not\":\"the document\"}",
    )
    .unwrap();

    let (ok, report) = verify(&url, &chain_url, &deployment, &content);
    assert!(!ok, "{report:?}");
    let named = |check: Check, subject: &str, detail: &str| {
        report
            .differences
            .iter()
            .any(|x| x.check == check && x.subject.contains(subject) && x.detail.contains(detail))
    };
    let all = serde_json::to_string_pretty(&report.differences).unwrap();
    assert!(
        named(
            Check::Overcharge,
            "forged-record-1",
            "signed terms price it at"
        ),
        "{all}"
    );
    assert!(
        named(Check::Record, &honest.batch_id.to_string(), "missing"),
        "{all}"
    );
    assert!(
        named(
            Check::Document,
            &forged_id.to_string(),
            "changed after signing"
        ),
        "{all}"
    );
    assert!(
        named(
            Check::Document,
            &unaccepted.contract_id.to_string(),
            "the provider's signature of the document is invalid"
        ),
        "{all}"
    );
    assert!(
        named(
            Check::Credential,
            &forged_hash.to_string(),
            "not to its anchor"
        ),
        "{all}"
    );
    assert!(
        named(Check::Configuration, "configuration", "does not resolve"),
        "{all}"
    );
    assert!(
        named(Check::Tampering, &c.id.to_string(), "other bytes"),
        "{all}"
    );

    // 7. A chain that is not the deployment's: refused, naming both.
    let mut other: Value = serde_json::from_slice(&std::fs::read(&deployment).unwrap()).unwrap();
    other["chainId"] = Value::from(chain_id + 1);
    let other_path = dir.path().join("other-deployment.json");
    std::fs::write(&other_path, serde_json::to_vec(&other).unwrap()).unwrap();
    let a = mercato(
        &url,
        &[
            "audit",
            "verify",
            "--rpc-url",
            &chain_url,
            "--deployment",
            other_path.to_str().unwrap(),
            "--content-dir",
            content.to_str().unwrap(),
        ],
    );
    let err = a.err();
    assert!(
        err.contains(&chain_id.to_string()) && err.contains(&(chain_id + 1).to_string()),
        "{err}"
    );
    broker.stop();
}
