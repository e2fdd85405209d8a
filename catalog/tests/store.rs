//! Storage on SQLite and on a real PostgreSQL (started by the test): the same suite on both.

use catalog::follow::IndexFollower;
use catalog::model::Offer;
use catalog::query::{Query, SortKey};
use catalog::store::{Backend, CatalogStore, ChangeKind, StoreError};
use catalog::{query, Index, ResourceClass};
use rand::{Rng, SeedableRng};
use testkit::pg_server::PgServer;
use testkit::synth::{Generator, REGIONS};

async fn suite(store: CatalogStore, second: CatalogStore) {
    let mut g = Generator::new(21, 4, true);
    let offers: Vec<Offer> = (0..400)
        .map(|i| g.offer(&format!("o{i}"), 1 + i % 3))
        .collect();

    // Offers of every class round-trip through the database.
    store.publish_many(&offers[..300], 1).await.unwrap();
    for o in &offers[300..] {
        store.publish(o, 2).await.unwrap();
    }
    for o in &offers {
        assert_eq!(&store.get(&o.id).await.unwrap().unwrap().offer, o);
    }

    // Versions: only current + 1 by the same provider; history keeps them all.
    let mut v2 = offers[0].clone();
    v2.version = 2;
    v2.name = "renamed".into();
    store.publish(&v2, 3).await.unwrap();
    assert!(matches!(
        store.publish(&v2, 4).await,
        Err(StoreError::VersionConflict { current: 2, .. })
    ));
    let mut skip = v2.clone();
    skip.version = 5;
    assert!(matches!(
        store.publish(&skip, 4).await,
        Err(StoreError::VersionConflict { .. })
    ));
    let mut fresh = offers[1].clone();
    fresh.id = "brand-new".into();
    fresh.version = 3;
    assert!(matches!(
        store.publish(&fresh, 4).await,
        Err(StoreError::NotFirstVersion { .. })
    ));
    let mut stolen = v2.clone();
    stolen.version = 3;
    stolen.provider = g.did(3).to_string();
    if stolen.provider != v2.provider {
        assert!(matches!(
            store.publish(&stolen, 4).await,
            Err(StoreError::NotOwner(_))
        ));
    }
    let history = store.history("o0").await.unwrap();
    assert_eq!(
        history.iter().map(|o| o.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(history[0], offers[0]);

    // Withdrawal: not offered any more, still readable, only by its provider, once.
    let owner = offers[1].provider.clone();
    assert!(matches!(
        store.withdraw("o1", "did:key:z6Mkother", 5).await,
        Err(StoreError::NotOwner(_))
    ));
    store.withdraw("o1", &owner, 5).await.unwrap();
    assert!(matches!(
        store.withdraw("o1", &owner, 6).await,
        Err(StoreError::Withdrawn(_))
    ));
    assert!(matches!(
        store.withdraw("nope", &owner, 6).await,
        Err(StoreError::NotFound(_))
    ));
    let w = store.get("o1").await.unwrap().unwrap();
    assert_eq!(w.withdrawn_at, Some(5));
    let mut again = offers[1].clone();
    again.version = 2;
    assert!(matches!(
        store.publish(&again, 7).await,
        Err(StoreError::Withdrawn(_))
    ));
    let (active, seq) = store.active_offers().await.unwrap();
    assert_eq!(active.len(), 399);
    let changes = store.changes_since(0, 10_000).await.unwrap();
    assert_eq!(changes.last().unwrap().seq, seq);
    assert_eq!(changes.last().unwrap().kind, ChangeKind::Withdrawn);
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));

    // The index built from the database answers like plain SQL on random queries.
    let index = Index::from_offers(active.clone());
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut nonempty = 0;
    for case in 0..120 {
        let mut q = Query {
            limit: rng.gen_range(1..30),
            ..Query::default()
        };
        if rng.gen_bool(0.5) {
            q.classes.push(ResourceClass::ALL[rng.gen_range(0..4)]);
        }
        if rng.gen_bool(0.4) {
            q.regions
                .push(REGIONS[rng.gen_range(0..REGIONS.len())].0.into());
        }
        if rng.gen_bool(0.3) {
            q.min_cpu_millicores = Some(rng.gen_range(0..32) * 1000);
        }
        if rng.gen_bool(0.3) {
            q.max_price = Some((rng.gen::<f64>() * 18.0).exp());
        }
        if rng.gen_bool(0.2) {
            q.text
                .push(["edge", "green", "ml", "dataset"][rng.gen_range(0..4)].into());
        }
        if rng.gen_bool(0.2) {
            q.min_green = Some(rng.gen_range(0..100));
        }
        if rng.gen_bool(0.15) {
            let (_, _, _, lat, lon) = REGIONS[rng.gen_range(0..REGIONS.len())];
            q.near = Some(query::Near {
                latitude: lat,
                longitude: lon,
                radius_km: rng.gen_range(50.0..1500.0),
            });
        }
        q.sort = [SortKey::Price, SortKey::Green, SortKey::Uptime][rng.gen_range(0..3)];
        let page = index.search(&q);
        let (sql, total) = store.sql_search(&q).await.unwrap();
        let mine: Vec<(String, usize)> = page
            .hits
            .iter()
            .map(|h| (h.offer.id.clone(), h.plan_index))
            .collect();
        assert_eq!(page.total, total, "case {case}: {q:?}");
        assert_eq!(mine, sql, "case {case}: {q:?}");
        if total > 0 {
            nonempty += 1;
        }
        let facets = index.facets(&q);
        let sql_facets = store.sql_facets(&q).await.unwrap();
        for r in &facets.regions {
            assert!(
                sql_facets.contains(&("region".into(), r.value.clone(), r.count))
                    || q.near.is_some(),
                "case {case}"
            );
        }
    }
    assert!(nonempty > 40);

    // A second process on the same database follows every change.
    let mut follower = IndexFollower::start(second).await.unwrap();
    let before = follower.seq();
    let mut v3 = v2.clone();
    v3.version = 3;
    v3.location.region = "zz-new".into();
    store.publish(&v3, 8).await.unwrap();
    store.withdraw("o2", &offers[2].provider, 9).await.unwrap();
    assert_eq!(follower.catch_up().await.unwrap(), 2);
    assert!(follower.seq() > before);
    let idx = follower.index();
    let idx = idx.read().unwrap();
    assert_eq!(idx.offer("o0").unwrap().version, 3);
    assert!(idx.offer("o2").is_none());
    let q = Query {
        regions: vec!["zz-new".into()],
        limit: 10,
        ..Query::default()
    };
    assert_eq!(idx.search(&q).total, v3.plans.len());
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("catalog.sqlite").display()
    );
    let store = CatalogStore::open(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    let second = CatalogStore::open(&url).await.unwrap();
    suite(store, second).await;
}

#[tokio::test]
async fn postgres_store() {
    let server = PgServer::start().expect("PostgreSQL starts (install Debian's postgresql)");
    let url = server.create_database("catalog").unwrap();
    let store = CatalogStore::open(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    let second = CatalogStore::open(&url).await.unwrap();
    suite(store, second).await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(
        CatalogStore::open("mysql://x").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}
