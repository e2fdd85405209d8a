//! The in-memory engine against a plain reference evaluation over the offers, on random queries,
//! including pagination through cursors, facets, updates and withdrawals.

use catalog::model::{Offer, ResourceClass};
use catalog::query::{self, Cursor, Near, Query, SortKey};
use catalog::Index;
use rand::{Rng, SeedableRng};
use testkit::synth::{self, Generator, GPU_MODELS, REGIONS};

fn reference(offers: &[Offer], q: &Query) -> Vec<(f64, u64, String, usize)> {
    let words: Vec<String> = q
        .text
        .iter()
        .flat_map(|t| query::tokens(t).collect::<Vec<_>>())
        .collect();
    let mut out = Vec::new();
    for o in offers {
        let classes = o.classes();
        if !q.classes.iter().all(|c| classes.contains(c)) {
            continue;
        }
        let any = |set: &[String], v: &str| set.is_empty() || set.iter().any(|s| s == v);
        if !any(&q.providers, &o.provider)
            || !any(&q.countries, &o.location.country)
            || !any(&q.regions, &o.location.region)
        {
            continue;
        }
        let arch = o
            .resources
            .compute
            .as_ref()
            .map(|c| c.architecture.as_str());
        if !q.architectures.is_empty() && !arch.is_some_and(|a| any(&q.architectures, a)) {
            continue;
        }
        let gpu = o.resources.gpu.as_ref();
        if !q.gpu_models.is_empty() && !gpu.is_some_and(|g| any(&q.gpu_models, &g.model)) {
            continue;
        }
        let mut text: Vec<String> = query::tokens(&o.name)
            .chain(query::tokens(&o.description))
            .collect();
        for t in &o.tags {
            text.extend(query::tokens(t));
        }
        if let Some(d) = &o.resources.data {
            text.extend(query::tokens(&d.dataset));
            text.extend(query::tokens(&d.descriptor));
        }
        if !words.iter().all(|w| text.contains(w)) {
            continue;
        }
        if q.min_green.is_some_and(|g| o.green_energy_percent < g) {
            continue;
        }
        // Certified figures come from the provider's certification, never from the offer.
        let cert = synth::certification(&o.provider);
        let cert_lat = cert
            .as_ref()
            .and_then(|c| c.latency_ms)
            .map_or(f64::INFINITY, |v| v as f32 as f64);
        let cert_up = cert
            .as_ref()
            .and_then(|c| c.uptime_percent)
            .map_or(-1.0, |v| v as f32 as f64);
        if q.max_certified_latency_ms.is_some_and(|v| cert_lat > v)
            || q.min_certified_uptime.is_some_and(|v| cert_up < v)
            || (q.verified_only && !cert.as_ref().is_some_and(|c| c.verified))
            || (!q.certified_by.is_empty()
                && !cert
                    .as_ref()
                    .is_some_and(|c| q.certified_by.contains(&c.issuer)))
        {
            continue;
        }
        let latency = o
            .resources
            .network
            .as_ref()
            .map_or(f64::INFINITY, |n| n.latency_ms as f32 as f64);
        if q.max_latency_ms.is_some_and(|v| latency > v) {
            continue;
        }
        if let Some(n) = q.near {
            let d = query::distance_km(
                n.latitude,
                n.longitude,
                o.location.latitude as f32 as f64,
                o.location.longitude as f32 as f64,
            );
            if d > n.radius_km {
                continue;
            }
        }
        for (i, p) in o.plans.iter().enumerate() {
            let u = &p.unit;
            if q.min_cpu_millicores.is_some_and(|v| u.cpu_millicores < v)
                || q.min_memory_mib.is_some_and(|v| u.memory_mib < v)
                || q.min_gpu_permille.is_some_and(|v| u.gpu_permille < v)
                || q.min_bandwidth_mbps.is_some_and(|v| u.bandwidth_mbps < v)
                || q.min_gpu_memory_mib
                    .is_some_and(|v| gpu.map_or(0, |g| g.memory_mib) < v)
            {
                continue;
            }
            let class = q.classes.first().copied().unwrap_or(classes[0]);
            let price = p.normalized_price(class) as f32 as f64;
            if q.max_price.is_some_and(|v| price > v) {
                continue;
            }
            let key = match q.sort {
                SortKey::Price => price,
                SortKey::Latency => cert_lat,
                SortKey::Uptime => -cert_up,
                SortKey::Green => -(o.green_energy_percent as f64),
                SortKey::Reputation => -0.5f32 as f64,
            };
            out.push((key, query::tiebreak(&o.id, &p.id), o.id.clone(), i));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    out
}

fn random_query(rng: &mut impl Rng, g: &Generator) -> Query {
    let mut q = Query {
        limit: rng.gen_range(1..40),
        ..Query::default()
    };
    if rng.gen_bool(0.5) {
        q.classes.push(ResourceClass::ALL[rng.gen_range(0..4)]);
    }
    if rng.gen_bool(0.3) {
        for _ in 0..rng.gen_range(1..3) {
            q.regions
                .push(REGIONS[rng.gen_range(0..REGIONS.len())].0.to_string());
        }
    }
    if rng.gen_bool(0.2) {
        q.countries
            .push(REGIONS[rng.gen_range(0..REGIONS.len())].1.to_string());
    }
    if rng.gen_bool(0.2) {
        q.gpu_models
            .push(GPU_MODELS[rng.gen_range(0..GPU_MODELS.len())].1.to_string());
    }
    if rng.gen_bool(0.1) {
        q.providers.push(g.did(rng.gen_range(0..5)).to_string());
    }
    if rng.gen_bool(0.1) {
        q.architectures
            .push(["amd64", "arm64"][rng.gen_range(0..2)].to_string());
    }
    if rng.gen_bool(0.2) {
        q.text.push(
            ["edge", "green", "ml", "Paris", "dataset", "energy"][rng.gen_range(0..6)].to_string(),
        );
    }
    if rng.gen_bool(0.3) {
        q.min_cpu_millicores = Some(rng.gen_range(0..64) * 1000);
    }
    if rng.gen_bool(0.2) {
        q.min_memory_mib = Some(rng.gen_range(0..128) * 1024);
    }
    if rng.gen_bool(0.2) {
        q.min_gpu_memory_mib = Some(rng.gen_range(0..100) * 1024);
    }
    if rng.gen_bool(0.1) {
        q.min_gpu_permille = Some(rng.gen_range(0..3000));
    }
    if rng.gen_bool(0.1) {
        q.min_bandwidth_mbps = Some(rng.gen_range(0..2000));
    }
    if rng.gen_bool(0.1) {
        q.max_latency_ms = Some(rng.gen_range(1.0..80.0));
    }
    if rng.gen_bool(0.3) {
        q.max_price = Some((rng.gen::<f64>() * 20.0).exp());
    }
    if rng.gen_bool(0.2) {
        q.min_green = Some(rng.gen_range(0..=100));
    }
    if rng.gen_bool(0.1) {
        q.max_certified_latency_ms = Some(rng.gen_range(1.0..100.0));
    }
    if rng.gen_bool(0.1) {
        q.min_certified_uptime = Some(rng.gen_range(95.0..100.0));
    }
    if rng.gen_bool(0.1) {
        q.verified_only = true;
    }
    if rng.gen_bool(0.05) {
        q.certified_by.push(synth::SYNTH_ISSUER.into());
    }
    if rng.gen_bool(0.15) {
        let (_, _, _, lat, lon) = REGIONS[rng.gen_range(0..REGIONS.len())];
        q.near = Some(Near {
            latitude: lat,
            longitude: lon,
            radius_km: rng.gen_range(10.0..2000.0),
        });
    }
    q.sort = [
        SortKey::Price,
        SortKey::Latency,
        SortKey::Uptime,
        SortKey::Green,
    ][rng.gen_range(0..4)];
    q
}

/// Every page of `q`, following cursors.
fn all_pages(index: &Index, q: &Query) -> (Vec<(f64, u64, String, usize)>, usize) {
    let mut out = Vec::new();
    let mut q = q.clone();
    let mut total = None;
    loop {
        let page = index.search(&q);
        assert!(total.is_none_or(|t| t == page.total));
        total = Some(page.total);
        for h in &page.hits {
            out.push((
                h.key,
                query::tiebreak(&h.offer.id, &h.plan().id),
                h.offer.id.clone(),
                h.plan_index,
            ));
        }
        match page.next {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
        assert!(
            out.len() <= total.unwrap(),
            "pagination runs past the total"
        );
    }
    (out, total.unwrap_or(0))
}

#[test]
fn random_queries_match_the_reference_through_every_page() {
    let seed: u64 = std::env::var("MERCATO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut g = Generator::new(seed, 5, false);
    let offers: Vec<Offer> = (0..1500)
        .map(|i| g.offer(&format!("o{i}"), 1 + i % 4))
        .collect();
    let mut index = Index::from_offers(offers.clone());
    synth::certify_all(&mut index, offers.iter().map(|o| o.provider.as_str()));
    // The same index scanning every candidate set on all cores, certified before its offers.
    let mut parallel = Index::new();
    synth::certify_all(&mut parallel, offers.iter().map(|o| o.provider.as_str()));
    for o in &offers {
        parallel.upsert(o.clone());
    }
    parallel.set_parallel_threshold(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut nonempty = 0;
    for case in 0..300 {
        let q = random_query(&mut rng, &g);
        let expected = reference(&offers, &q);
        let (got, total) = all_pages(&index, &q);
        assert_eq!(total, expected.len(), "seed {seed} case {case}: {q:?}");
        assert_eq!(got, expected, "seed {seed} case {case}: {q:?}");
        if case % 3 == 0 {
            assert_eq!(
                all_pages(&parallel, &q),
                (expected.clone(), expected.len()),
                "parallel, seed {seed} case {case}"
            );
            assert_eq!(
                parallel.facets(&q),
                index.facets(&q),
                "parallel facets, case {case}"
            );
        }
        if !expected.is_empty() {
            nonempty += 1;
        }
    }
    assert!(
        nonempty > 100,
        "queries too selective to mean anything: {nonempty}"
    );
}

#[test]
fn facets_count_everything_the_filter_matches() {
    let mut g = Generator::new(3, 5, false);
    let offers: Vec<Offer> = (0..800).map(|i| g.offer(&format!("o{i}"), 2)).collect();
    let index = Index::from_offers(offers.clone());
    let q = Query {
        regions: vec!["eu-west".into(), "eu-central".into()],
        ..Query::default()
    };
    let f = index.facets(&q);
    let expected = reference(&offers, &q);
    assert_eq!(f.total, expected.len());
    let count = |class: ResourceClass| {
        expected
            .iter()
            .filter(|(_, _, id, _)| {
                offers
                    .iter()
                    .find(|o| &o.id == id)
                    .unwrap()
                    .classes()
                    .contains(&class)
            })
            .count()
    };
    for c in &f.classes {
        assert_eq!(
            c.count,
            count(ResourceClass::parse(&c.value).unwrap()),
            "{c:?}"
        );
    }
    let regions: usize = f.regions.iter().map(|r| r.count).sum();
    assert_eq!(regions, f.total);
    assert!(f
        .regions
        .iter()
        .all(|r| r.value == "eu-west" || r.value == "eu-central"));
    assert_eq!(
        f.price_buckets.iter().map(|b| b.count).sum::<usize>(),
        f.total
    );
}

#[test]
fn updates_and_withdrawals_are_visible_at_once() {
    let mut g = Generator::new(11, 3, false);
    let mut offers: Vec<Offer> = (0..200).map(|i| g.offer(&format!("o{i}"), 2)).collect();
    let mut index = Index::from_offers(offers.clone());
    let q = Query {
        limit: 200,
        ..Query::default()
    };
    assert_eq!(index.search(&q).total, 400);

    // Update: new version replaces the old rows.
    let mut changed = offers[5].clone();
    changed.version = 2;
    changed.location.region = "xx-test".into();
    index.upsert(changed.clone());
    offers[5] = changed;
    let only = Query {
        regions: vec!["xx-test".into()],
        ..q.clone()
    };
    let page = index.search(&only);
    assert_eq!(page.total, 2);
    assert!(page.hits.iter().all(|h| h.offer.version == 2));
    assert_eq!(index.search(&q).total, 400);

    // Withdrawal.
    assert!(index.remove("o5"));
    assert!(!index.remove("o5"));
    assert_eq!(index.search(&only).total, 0);
    assert_eq!(index.search(&q).total, 398);

    // Many churned offers trigger compaction; results stay right.
    for round in 0..30 {
        for o in &mut offers[10..] {
            o.version += 1;
            o.green_energy_percent = (round * 3 % 100) as u8;
            index.upsert(o.clone());
        }
    }
    offers.remove(5);
    let q = Query {
        limit: 7,
        sort: SortKey::Green,
        ..Query::default()
    };
    assert_eq!(all_pages(&index, &q).0, reference(&offers, &q));
}

#[test]
fn an_unknown_value_matches_nothing_and_a_bad_cursor_is_refused_upstream() {
    let mut g = Generator::new(5, 2, false);
    let index = Index::from_offers((0..50).map(|i| g.offer(&format!("o{i}"), 1)));
    let q = Query {
        regions: vec!["nowhere".into()],
        ..Query::default()
    };
    assert_eq!(index.search(&q).total, 0);
    let q = Query {
        text: vec!["zzzzunknownword".into()],
        ..Query::default()
    };
    assert_eq!(index.facets(&q).total, 0);
    assert!(Cursor::decode("not-a-cursor").is_none());
}

#[test]
fn certified_figures_come_from_the_certification_and_change_at_once() {
    let mut g = Generator::new(21, 4, false);
    let offers: Vec<Offer> = (0..40).map(|i| g.offer(&format!("o{i}"), 1)).collect();
    let mut index = Index::from_offers(offers.clone());
    let q = Query {
        max_certified_latency_ms: Some(10.0),
        limit: 200,
        ..Query::default()
    };
    // An offer's own (declared) metrics never count.
    assert_eq!(index.search(&q).total, 0);
    let provider = offers[0].provider.clone();
    let mine = offers.iter().filter(|o| o.provider == provider).count();
    index.set_certification(
        &provider,
        Some(catalog::index::Certification {
            issuer: "did:key:z6MkA".into(),
            latency_ms: Some(2.0),
            uptime_percent: Some(99.9),
            verified: true,
            metrics: Vec::new(),
        }),
    );
    assert_eq!(index.search(&q).total, mine);
    let verified = Query {
        verified_only: true,
        certified_by: vec!["did:key:z6MkA".into()],
        limit: 200,
        ..Query::default()
    };
    assert_eq!(index.search(&verified).total, mine);
    let other = Query {
        certified_by: vec!["did:key:z6MkB".into()],
        ..verified.clone()
    };
    assert_eq!(index.search(&other).total, 0);
    // Revoked: nothing certified any more, also for offers published afterwards.
    index.set_certification(&provider, None);
    assert_eq!(index.search(&q).total, 0);
    assert_eq!(index.search(&verified).total, 0);
}
