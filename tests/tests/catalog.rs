//! The catalog through the broker's API and the CLI: writes reach the running broker's index
//! through the change log, searches page and rank, errors are problems.

use api::offers::{OfferStatus, SearchPage};
use catalog::store::CatalogStore;
use catalog::Query;
use e2e::{eventually, mercato, BrokerProcess, Patience};
use testkit::synth::Generator;

async fn wait_for_total(client: &sdk::Client, q: &Query, want: usize) {
    eventually(
        &format!("the index to hold {want} plans"),
        Patience::secs(20),
        || async { client.search_offers(q).await.unwrap().total == want },
    )
    .await;
}

#[tokio::test]
async fn search_browse_and_follow_writes_through_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let client = sdk::Client::new(&broker.url).unwrap();
    let all = Query {
        limit: 200,
        ..Query::default()
    };
    assert_eq!(client.search_offers(&all).await.unwrap().total, 0);

    // Another writer on the broker's database (as a second broker process would be).
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("broker.sqlite").display()
    );
    let store = CatalogStore::open(&db).await.unwrap();
    let mut g = Generator::new(4, 3, true);
    let offers: Vec<catalog::Offer> = (0..120).map(|i| g.offer(&format!("e2e-{i}"), 2)).collect();
    store.publish_many(&offers, 1).await.unwrap();
    wait_for_total(&client, &all, 240).await;

    // Paging with cursors visits every plan once, in order.
    let mut q = Query {
        limit: 50,
        ..Query::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = client.search_offers(&q).await.unwrap();
        seen.extend(
            page.items
                .iter()
                .map(|i| (i.sort_key, i.offer_id.clone(), i.plan.id.clone())),
        );
        match page.next_cursor {
            Some(c) => q.cursor = catalog::query::Cursor::decode(&c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 240);
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));

    // The CLI prints a table, or JSON.
    let answer = mercato(
        &broker.url,
        &["offers", "search", "--class", "compute", "--limit", "5"],
    );
    let table = answer.out();
    assert!(
        table.contains("price/h") && table.contains("e2e-"),
        "{table}"
    );
    let page: SearchPage = mercato(
        &broker.url,
        &[
            "--json",
            "offers",
            "search",
            "--class",
            "gpu",
            "--min-gpu-memory-gib",
            "40",
        ],
    )
    .json();
    assert!(!page.items.is_empty());
    for item in &page.items {
        assert!(item.resources.gpu.as_ref().unwrap().memory_mib >= 40 * 1024);
    }
    let facets = mercato(&broker.url, &["offers", "facets", "--region", "eu-west"]);
    assert!(facets.out().contains("eu-west"), "{facets:?}");
    let counted: catalog::query::Facets = mercato(
        &broker.url,
        &["--json", "offers", "facets", "--region", "eu-west"],
    )
    .json();
    assert!(counted
        .regions
        .iter()
        .any(|r| r.value == "eu-west" && r.count > 0));

    // Bad filters: a 400 problem naming the parameter, and the CLI says what to do.
    let resp = reqwest::get(format!("{}/v1/offers?limit=0", broker.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("limit"));
    let err = mercato(&broker.url, &["offers", "search", "--class", "quantum"]);
    assert!(
        err.err().contains("quantum") && err.err().contains("compute"),
        "{err:?}"
    );
    let err = mercato(&broker.url, &["offers", "search", "--near", "1,2"]);
    assert!(
        err.err().contains("near") && err.err().contains("--help"),
        "{err:?}"
    );
    // Malformed query strings are problems too.
    let resp = reqwest::get(format!("{}/v1/contracts?limit=abc", broker.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "the caller is checked first");
    let resp = reqwest::get(format!("{}/v1/offers?limit=1001", broker.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");

    // Updates and withdrawals show at once; withdrawn offers stay readable.
    let mut v2 = offers[0].clone();
    v2.version = 2;
    v2.location.region = "zz-e2e".into();
    v2.sign(
        &g.providers
            .iter()
            .find(|k| identity::did_of(&k.verifying_key()) == v2.provider.as_str())
            .unwrap()
            .clone(),
    );
    store.publish(&v2, 2).await.unwrap();
    let zz = Query {
        regions: vec!["zz-e2e".into()],
        ..Query::default()
    };
    wait_for_total(&client, &zz, 2).await;
    store
        .withdraw("e2e-1", &offers[1].provider, 3)
        .await
        .unwrap();
    wait_for_total(&client, &all, 238).await;
    let doc = client.offer(&"e2e-1".parse().unwrap()).await.unwrap();
    assert_eq!(doc.status, OfferStatus::Withdrawn);
    let shown = mercato(&broker.url, &["offers", "show", "e2e-0"]);
    assert!(shown.out().contains("zz-e2e"), "{shown:?}");
    let missing = client
        .offer(&"no-such-offer".parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(404), "{missing}");
    broker.stop();
}

#[tokio::test]
async fn two_broker_processes_on_one_postgres_both_follow_every_write() {
    let pg = testkit::pg_server::PgServer::start().expect("PostgreSQL starts");
    let url = pg.create_database("shared").unwrap();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let b1 = BrokerProcess::start_with(d1.path(), &["--database-url", &url]);
    let b2 = BrokerProcess::start_with(d2.path(), &["--database-url", &url]);
    let (c1, c2) = (
        sdk::Client::new(&b1.url).unwrap(),
        sdk::Client::new(&b2.url).unwrap(),
    );

    let store = CatalogStore::open(&url).await.unwrap();
    let mut g = Generator::new(8, 2, true);
    let offers: Vec<catalog::Offer> = (0..30).map(|i| g.offer(&format!("pg-{i}"), 3)).collect();
    store.publish_many(&offers[..20], 1).await.unwrap();
    for o in &offers[20..] {
        store.publish(o, 2).await.unwrap();
    }
    let all = Query {
        limit: 200,
        ..Query::default()
    };
    wait_for_total(&c1, &all, 90).await;
    wait_for_total(&c2, &all, 90).await;
    store
        .withdraw("pg-3", &offers[3].provider, 3)
        .await
        .unwrap();
    wait_for_total(&c1, &all, 87).await;
    wait_for_total(&c2, &all, 87).await;
    let p1 = c1.search_offers(&all).await.unwrap();
    let p2 = c2.search_offers(&all).await.unwrap();
    let ids = |p: &SearchPage| {
        p.items
            .iter()
            .map(|i| (i.offer_id.clone(), i.plan.id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&p1), ids(&p2));
    b1.stop();
    b2.stop();
}
