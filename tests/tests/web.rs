//! The web front end in a real browser: the broker serves web/dist (built by scripts/test, or
//! `npm run build` in web/) and Debian's chromium, driven by playwright-core, uses it against the
//! embedded stack, with the example offers (`examples/offers/`, published as they are with the
//! CLI) and a synthetic mix. Screenshots go to web/test-artifacts/.

use std::path::Path;
use std::process::Command;

use api::{ContractState, Credits, Role};
use e2e::market::{buy_by_policy, offer, ppu_offer, request, units, Participant};
use e2e::peer::{free_port, key_file, provider_with_agent, use_bytes, wait_port, Killed};
use e2e::{eventually, eventually_some, mercato, BrokerProcess, Patience};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OFFERS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketplace_lists_filters_and_refuses_bad_filters_in_a_browser() {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with_web(&dir.path().join("broker"));

    // The examples, published as they are with the CLI (prices written in credits).
    let key = dir.path().join("p.hex");
    let key = key.to_str().unwrap();
    for args in [
        vec!["keys", "new"],
        vec!["register", "--role", "provider"],
        vec!["account", "link"],
    ] {
        let mut all = vec!["--key-file", key];
        all.extend(args);
        let a = mercato(&broker.url, &all);
        assert!(a.ok, "{}", a.err());
    }
    let mut plans = 0;
    let mut gpu = 0;
    for class in ["compute", "gpu", "network", "data"] {
        let file = root.join(format!("examples/offers/{class}.yaml"));
        let a = mercato(
            &broker.url,
            &[
                "--key-file",
                key,
                "--json",
                "offers",
                "publish",
                file.to_str().unwrap(),
            ],
        );
        assert!(a.ok, "examples/offers/{class}.yaml: {}", a.err());
        plans += 2;
        gpu += usize::from(class == "gpu") * 2;
    }

    // A provider with offers of every class (the synthetic catalog's mix).
    let provider = Participant::new(&broker.url, Role::Provider).await;
    let mut generator = testkit::synth::Generator::new(11, 1, false);
    for i in 0..OFFERS {
        let mut offer = generator.offer(&format!("web-{i}"), 1 + i % 2);
        offer.availability = Default::default();
        plans += offer.plans.len();
        if offer.resources.gpu.is_some() {
            gpu += offer.plans.len();
        }
        provider.session.publish_offer(offer).await.unwrap();
    }
    assert!(gpu > 0, "the synthetic mix has GPU offers");

    let artifacts = root.join("web/test-artifacts");
    let figures = marketplace_in_browser(&broker.url, &artifacts, plans);
    assert_eq!(figures["gpu"], gpu);
    // The first page's JavaScript within its budget (a size, not a timing).
    let script = figures["scriptGzipBytes"].as_u64().unwrap();
    assert!(script > 0 && script < 250 * 1024, "{script} bytes gzipped");
    for shot in ["marketplace.png", "marketplace-phone.png"] {
        assert!(
            artifacts.join(shot).metadata().unwrap().len() > 1000,
            "{shot}"
        );
    }
    broker.stop();
}

/// The marketplace with 10,000 offers in the catalog (loaded into the broker's database before
/// it starts): every plan counted and the first page shown. The time from navigation to the
/// first results is printed for docs/benchmarks.md, not asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marketplace_shows_ten_thousand_offers() {
    const MANY: usize = 10_000;
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broker");
    std::fs::create_dir_all(&data).unwrap();
    let store = broker::store::Store::open(
        &format!("sqlite://{}?mode=rwc", data.join("broker.sqlite").display()),
        broker::store::PoolSize {
            max_connections: None,
        },
    )
    .await
    .unwrap();
    let mut generator = testkit::synth::Generator::new(5, 50, true);
    let offers: Vec<_> = (0..MANY)
        .map(|i| {
            let mut o = generator.offer(&format!("many-{i}"), 1);
            o.availability = Default::default();
            o
        })
        .collect();
    store
        .catalog()
        .publish_many(&offers, broker::store::now())
        .await
        .unwrap();
    drop(store);

    let broker = broker_with_web(&data);
    let artifacts = root.join("web/test-artifacts/many");
    let figures = marketplace_in_browser(&broker.url, &artifacts, MANY);
    eprintln!(
        "marketplace with {MANY} offers: first results {} ms after navigation",
        figures["resultsMs"]
    );
    broker.stop();
}

/// Keys made in the browser: registered and logged in there, and the downloaded key file is the
/// CLI's (the CLI reads it and is the same participant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_in_the_browser_register_log_in_and_serve_the_cli() {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with_web(&dir.path().join("broker"));
    let artifacts = root.join("web/test-artifacts");
    let shown = browser_script(
        "e2e/account.mjs",
        &[&broker.url, artifacts.to_str().unwrap()],
    );
    let key_file = Path::new(shown["keyFile"].as_str().unwrap());
    let key = identity::keyfile::load(key_file).unwrap();
    assert_eq!(
        identity::did_of(&key.verifying_key()).to_string(),
        shown["did"].as_str().unwrap()
    );
    // The CLI, with the file the page gave, logs in as the same consumer (its contracts: none).
    let listed = mercato(
        &broker.url,
        &[
            "--key-file",
            key_file.to_str().unwrap(),
            "--json",
            "contracts",
            "list",
        ],
    );
    assert!(listed.ok, "{}", listed.err());
    assert_eq!(listed.stdout.trim(), "[]");
    std::fs::remove_file(key_file).unwrap();
    broker.stop();
}

/// A consumer buys in the browser, from keys made there to a contract active on chain: the page
/// checks and signs the terms, follows the contract, downloads its credential and tops the escrow
/// up. Then, outside the browser: the chain has the contract with its deposit and top-up, the
/// consumer's balance is the faucet's less exactly what it paid, and the CLI connects to the
/// provider with the downloaded key files and credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_buys_in_the_browser_and_connects_with_the_cli() {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with_web(&dir.path().join("broker"));
    let offers = [
        offer("browser-reserved", 4, 100_000_000),
        ppu_offer("browser-ppu", 4, 1_000),
    ];
    // Kept to the end: its agent accepts the purchase and serves the connection.
    let _seller = seller_of(&broker.url, dir.path(), &offers).await;
    let artifacts = root.join("web/test-artifacts");
    let shown = browser_script(
        "e2e/buy.mjs",
        &[
            &broker.url,
            artifacts.to_str().unwrap(),
            "browser-reserved",
            "browser-ppu",
        ],
    );
    let file = |k: &str| Path::new(shown[k].as_str().unwrap()).to_path_buf();
    let (key_file, evm_file, credential) =
        (file("keyFile"), file("evmFile"), file("credentialFile"));

    // The chain, asked through the SDK with the key files the page gave.
    let key = identity::keyfile::load(&key_file).unwrap();
    let evm = sdk::keys::load_evm(&evm_file).unwrap();
    let session = sdk::Session::new(sdk::Client::new(&broker.url).unwrap(), key);
    let contracts = session.contracts().await.unwrap();
    assert_eq!(contracts.len(), 1, "bought once: {contracts:?}");
    let c = session.contract(contracts[0].id).await.unwrap();
    assert_eq!(c.id.to_string(), shown["contract"].as_str().unwrap());
    assert_eq!(c.state, ContractState::Active);
    let chain = c.chain.as_ref().expect("on chain");
    assert_eq!(chain.status, api::contracts::ChainStatus::Active);
    // Two periods of 1 credit escrowed, then 5 credits topped up: 7 credits went in.
    // (`held`, the running period's payment, is part of `charged`.)
    let paid = [chain.escrow, chain.charged].into_iter().sum::<Credits>();
    assert_eq!(paid, Credits::whole(7), "{chain:?}");
    let account = session.account(evm.address()).await.unwrap();
    assert_eq!(
        account.credits,
        Credits::whole(993),
        "1000 from the faucet, less 7"
    );
    let statement = session.statement(c.id).await.unwrap();
    assert!(statement.matches_chain, "{statement:?}");

    // The CLI connects straight to the provider with the page's key file and credential.
    let local = free_port();
    let _connect = Killed(
        std::process::Command::new(e2e::bin("mercato"))
            .args(["--broker", &broker.url, "--key-file"])
            .arg(&key_file)
            .args(["connect", &c.id.to_string(), "--local"])
            .arg(format!("127.0.0.1:{local}"))
            .arg("--credential")
            .arg(&credential)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(local).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .unwrap();
    stream.write_all(b"bought in a browser").await.unwrap();
    let mut back = [0u8; 19];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"bought in a browser");
    for f in [key_file, evm_file, credential] {
        std::fs::remove_file(f).unwrap();
    }
    broker.stop();
}

/// A dishonest or absent broker, as the page sees it: a reservation rewritten to pay another
/// account is named in the review and cannot be signed; a broker that does not answer is said to;
/// a purchase whose answer was lost is bought again without a second charge; a purchase whose
/// deposit permit a second tab spent fails and says so. Then, outside the browser: the chain has
/// exactly the two contracts bought, each paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_refuses_a_dishonest_reservation_and_survives_a_lost_answer() {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with_web(&dir.path().join("broker"));
    let offers = [
        offer("browser-faults", 8, 100_000_000),
        ppu_offer("browser-faults-ppu", 4, 1_000),
    ];
    let seller = seller_of(&broker.url, dir.path(), &offers).await;
    let artifacts = root.join("web/test-artifacts");
    let shown = browser_script(
        "e2e/faults.mjs",
        &[
            &broker.url,
            artifacts.to_str().unwrap(),
            "browser-faults",
            "browser-faults-ppu",
        ],
    );
    // Two contracts active (the lost answer's, bought once, and the second tab's); the purchase
    // whose permit was spent failed, if it reached the chain at all, and moved nothing.
    let sold = seller.provider.session.contracts().await.unwrap();
    let (mut active, mut paid) = (Vec::new(), Credits::ZERO);
    for listed in &sold {
        let c = seller.provider.session.contract(listed.id).await.unwrap();
        let chain = c.chain.clone().expect("the chain's view");
        match c.state {
            ContractState::Active => {
                assert_eq!(chain.status, api::contracts::ChainStatus::Active);
                paid = [paid, chain.escrow, chain.charged].into_iter().sum();
                active.push(c);
            }
            ContractState::Failed => {
                assert_eq!(chain.status, api::contracts::ChainStatus::None, "{c:?}")
            }
            other => panic!("{} is {other}: {shown}", c.id),
        }
    }
    assert_eq!(active.len(), 2, "{sold:?} ({shown})");
    assert!(
        active.iter().any(|c| shown["contract"]
            .as_str()
            .is_some_and(|prefix| c.id.to_string().starts_with(prefix))),
        "{shown}"
    );
    assert_eq!(
        paid,
        Credits::whole(3),
        "one period of 1 credit, a deposit of 2"
    );
    let consumer = active[0].chain.as_ref().unwrap().consumer;
    let balance = seller.provider.session.account(consumer).await.unwrap();
    assert_eq!(
        balance.credits,
        Credits::whole(997),
        "1000 from the faucet, less 3"
    );
    broker.stop();
}

/// The broker stops while a consumer reviews a purchase in the page, and starts again: buying
/// while it is down says so, buying again once it is back gives the contract, active on chain,
/// paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_in_the_page_survives_a_broker_restart() {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("broker");
    let broker = broker_with_web(&data);
    let (url, port) = (broker.url.clone(), broker.port);
    let seller = seller_of(
        &url,
        dir.path(),
        &[offer("browser-restart", 2, 100_000_000)],
    )
    .await;
    let signals = dir.path().join("signals");
    std::fs::create_dir_all(&signals).unwrap();
    let page = RunningScript::start(
        "e2e/restart.mjs",
        &[
            &url,
            root.join("web/test-artifacts").to_str().unwrap(),
            "browser-restart",
            signals.to_str().unwrap(),
        ],
    );
    page.signalled(&signals.join("at-review")).await;
    broker.stop();
    std::fs::write(signals.join("broker-down"), "").unwrap();
    page.signalled(&signals.join("saw-down")).await;
    let dist = root.join("web/dist");
    let broker = BrokerProcess::start_on(port, &data, &["--web-dir", dist.to_str().unwrap()], &[]);
    std::fs::write(signals.join("broker-up"), "").unwrap();
    let shown = page.finish();

    let sold = seller.provider.session.contracts().await.unwrap();
    assert_eq!(sold.len(), 1, "bought once: {sold:?}");
    let c = seller.provider.session.contract(sold[0].id).await.unwrap();
    assert!(
        c.id.to_string()
            .starts_with(shown["contract"].as_str().unwrap()),
        "{shown}"
    );
    let chain = c.chain.expect("on chain");
    assert_eq!(chain.status, api::contracts::ChainStatus::Active);
    assert_eq!(
        chain.escrow.checked_add(chain.charged).unwrap(),
        Credits::whole(1)
    );
    let balance = seller
        .provider
        .session
        .account(chain.consumer)
        .await
        .unwrap();
    assert_eq!(
        balance.credits,
        Credits::whole(999),
        "1000 from the faucet, less 1"
    );
    broker.stop();
}

/// The provider console and the auditor explorer in a browser: a provider made there registers
/// its configuration, publishes an offer from the form (after its errors) and a new version, and
/// accepts the purchase a consumer makes meanwhile, which opens on chain; an auditor checks a
/// settled record's Merkle proof in the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_and_auditors_work_in_the_browser() {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let op_key = identity::generate();
    let op_did = identity::did_of(&op_key.verifying_key()).to_string();
    let broker = broker_with_web_and(
        &dir.path().join("broker"),
        &[
            "--settle-interval",
            "1",
            "--dispute-window",
            "0",
            "--operator",
            &op_did,
        ],
    );
    let url = broker.url.clone();
    let client = sdk::Client::new(&url).unwrap();
    let auditor_key = identity::generate();
    sdk::Session::new(client.clone(), op_key)
        .grant(&auditor_key, Role::Auditor)
        .await
        .unwrap();
    let auditor_file = key_file(dir.path(), "auditor.hex", &auditor_key);

    // A settled batch for the auditor to prove a record of.
    let agent = provider_with_agent(&url, dir.path(), None, true).await;
    let consumer = Participant::new(&url, Role::Consumer).await;
    let metered = ppu_offer("console-ppu", 2, 1_000_000_000);
    agent
        .provider
        .session
        .publish_offer(metered.clone())
        .await
        .unwrap();
    let mut req = request(&metered, 1);
    req.deposit = Some(units(3_000_000));
    let c = buy_by_policy(&consumer, &req).await;
    let credential = consumer.session.credential(c.id).await.unwrap();
    use_bytes(&consumer, &credential, 1_000_000).await;
    eventually("the usage to settle", Patience::secs(30), || async {
        consumer.session.usage(c.id).await.unwrap().settled == units(2_000_000)
    })
    .await;
    // Its provider's earnings, once the charge's challenge window (60 s) has passed; gas money
    // for the withdrawal its account signs in the page.
    let earner = &agent.provider;
    earner.session.faucet().await.unwrap();
    let earner_evm = dir.path().join("earner-evm.hex");
    std::fs::write(
        &earner_evm,
        identity::hex_encode(earner.evm.to_bytes().as_slice()),
    )
    .unwrap();
    broker.advance_chain(61).await;
    let earned = eventually_some("the charge to be released", Patience::secs(30), || async {
        let info = earner.session.account(earner.evm.address()).await.ok()?;
        (!info.earnings.is_zero()).then_some(info)
    })
    .await;

    let browser = RunningScript::start(
        "e2e/console.mjs",
        &[
            &url,
            root.join("web/test-artifacts").to_str().unwrap(),
            auditor_file.to_str().unwrap(),
            agent.key.to_str().unwrap(),
            earner_evm.to_str().unwrap(),
        ],
    );
    // The consumer buys the offer the page publishes, once its second version is there (or the
    // page has failed: its output says why).
    let offer = eventually_some("the page to publish version 2", Patience::secs(90), || {
        let client = client.clone();
        browser.still_running("publishing version 2");
        async move {
            let o = client
                .offer(&"console-compute".parse().unwrap())
                .await
                .ok()?
                .offer;
            (o.version == 2).then_some(o)
        }
    })
    .await;
    assert_eq!(offer.name, "Console compute, version 2");
    assert_eq!(offer.location.latitude, 52.52);
    assert_eq!(
        offer.plans[0].pricing.reserved.as_ref().unwrap().price,
        units(75_000_000)
    );
    let req = request(&offer, 1);
    let r = consumer.session.reserve(&req).await.unwrap();
    let bought = consumer
        .session
        .purchase(&req, &r, &consumer.evm, "console")
        .await
        .unwrap();
    let shown = browser.finish();
    assert!(shown["contracts"].as_u64().unwrap() >= 1, "{shown}");
    // Withdrawn in the page: the earnings are the account's credits now.
    let after = earner.session.account(earner.evm.address()).await.unwrap();
    assert!(after.earnings.is_zero(), "{after:?}");
    assert_eq!(
        after.credits,
        earned.credits.checked_add(earned.earnings).unwrap(),
        "{shown}"
    );
    // Accepted in the page: signed by the provider, open on chain.
    let active = consumer
        .session
        .wait_contract(
            bought.id,
            |c| c.state == ContractState::Active,
            |_| {},
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    let active = consumer.session.contract(active.id).await.unwrap();
    assert!(active.provider_signature.is_some());
    assert_eq!(
        active.chain.expect("on chain").status,
        api::contracts::ChainStatus::Active
    );
    broker.stop();
}

/// Runs a browser script of web/e2e with `args` to its end; the JSON line it prints.
fn browser_script(script: &str, args: &[&str]) -> serde_json::Value {
    RunningScript::start(script, args).finish()
}

/// A browser script of web/e2e running beside the test (which acts on the stack meanwhile).
struct RunningScript {
    script: String,
    child: std::sync::Mutex<std::process::Child>,
    output: tempfile::TempDir,
}

impl RunningScript {
    fn start(script: &str, args: &[&str]) -> Self {
        let output = tempfile::tempdir().unwrap();
        let file = |name: &str| std::fs::File::create(output.path().join(name)).unwrap();
        let child = Command::new("node")
            .current_dir(root().join("web"))
            .arg(script)
            .args(args)
            .stdout(file("out"))
            .stderr(file("err"))
            .spawn()
            .expect("node runs (scripts/test installs the web packages)");
        Self {
            script: script.into(),
            child: std::sync::Mutex::new(child),
            output,
        }
    }

    /// What it printed: (stdout, stderr).
    fn said(&self) -> (String, String) {
        let read = |name: &str| std::fs::read_to_string(self.output.path().join(name));
        (
            read("out").unwrap_or_default(),
            read("err").unwrap_or_default(),
        )
    }

    /// Fails the test, with the script's output, when the script ended before `what`.
    fn still_running(&self, what: &str) {
        if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
            let (out, err) = self.said();
            panic!("{} ended ({status}) before {what}: {out}{err}", self.script);
        }
    }

    /// Waits for the script's signal file `at` (the script is waiting for the test after it).
    async fn signalled(&self, at: &Path) {
        let what = at.display().to_string();
        eventually(&what, Patience::secs(90), || {
            self.still_running(&what);
            let done = at.is_file();
            async move { done }
        })
        .await
    }

    /// Waits for the end; the JSON line it printed (the test fails with its output otherwise).
    fn finish(self) -> serde_json::Value {
        let status = self.child.lock().unwrap().wait().unwrap();
        let (out, err) = self.said();
        assert!(status.success(), "{}: {out}{err}", self.script);
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("{} printed no JSON ({e}): {out}{err}", self.script))
    }
}

/// A provider with a running agent (accepting purchases by itself), selling `offers`.
async fn seller_of(
    url: &str,
    dir: &Path,
    offers: &[catalog::model::Offer],
) -> e2e::peer::AgentProvider {
    let seller = provider_with_agent(url, dir, None, true).await;
    for o in offers {
        seller
            .provider
            .session
            .publish_offer(o.clone())
            .await
            .unwrap();
    }
    seller
}

/// The repository's root (web/ and examples/ are read from there).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// A broker on `data` serving the built front end, which the tests need.
fn broker_with_web(data: &Path) -> BrokerProcess {
    broker_with_web_and(data, &[])
}

fn broker_with_web_and(data: &Path, args: &[&str]) -> BrokerProcess {
    let dist = root().join("web/dist");
    assert!(
        dist.join("index.html").is_file(),
        "no web build at {}: run scripts/test (or npm ci && npm run build in web/)",
        dist.display()
    );
    let mut all = vec!["--web-dir", dist.to_str().unwrap()];
    all.extend_from_slice(args);
    BrokerProcess::start_with(data, &all)
}

/// Runs web/e2e/marketplace.mjs against `url`; its figures.
fn marketplace_in_browser(url: &str, artifacts: &Path, plans: usize) -> serde_json::Value {
    let figures = browser_script(
        "e2e/marketplace.mjs",
        &[url, artifacts.to_str().unwrap(), &plans.to_string()],
    );
    assert_eq!(figures["total"], plans);
    eprintln!("marketplace in the browser: {figures}");
    figures
}
