//! `catalog-bench`: a synthetic catalog of 1,000,000 plans (50,000 offers × 20 plans, skewed
//! classes, regions, GPU models and prices) loaded into SQLite and PostgreSQL; a fixed mix of
//! queries answered by the in-memory index and by plain SQL on both databases in the same run.
//! Reports p50/p99 per query kind and the ratios, index memory per plan and rebuild time. The
//! last line of output is one JSON object with the figures.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use catalog::query::{Near, Query, SortKey};
use catalog::store::CatalogStore;
use catalog::{Index, ResourceClass};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use testkit::pg_server::PgServer;
use testkit::synth::{Generator, GPU_MODELS, REGIONS};

#[derive(Parser)]
#[command(about = "Catalog query engine against plain SQL at a million plans")]
struct Cli {
    #[arg(long, default_value_t = 50_000)]
    offers: usize,
    #[arg(long, default_value_t = 20)]
    plans_per_offer: usize,
    /// Runs per query kind on the index.
    #[arg(long, default_value_t = 300)]
    index_runs: usize,
    /// Runs per query kind on each SQL database (slower).
    #[arg(long, default_value_t = 30)]
    sql_runs: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    GpuEu,
    ComputeNear,
    DataText,
    NetworkLatency,
    BroadRanked,
    FacetsBroad,
}

const KINDS: [(Kind, &str); 6] = [
    (Kind::GpuEu, "gpu >=40GB in EU under price, by price"),
    (Kind::ComputeNear, "compute >=8 cpu near a point"),
    (Kind::DataText, "datasets by text"),
    (Kind::NetworkLatency, "network <=20ms, by green"),
    (Kind::BroadRanked, "everything, by uptime"),
    (Kind::FacetsBroad, "facets for all compute"),
];

fn query(kind: Kind, rng: &mut StdRng) -> Query {
    let mut q = Query {
        limit: 20,
        ..Query::default()
    };
    match kind {
        Kind::GpuEu => {
            q.classes = vec![ResourceClass::Gpu];
            q.regions = REGIONS
                .iter()
                .filter(|r| r.0.starts_with("eu-"))
                .map(|r| r.0.to_string())
                .collect();
            q.min_gpu_memory_mib = Some(40 * 1024);
            q.max_price = Some(rng.gen_range(5e6..5e8));
        }
        Kind::ComputeNear => {
            q.classes = vec![ResourceClass::Compute];
            q.min_cpu_millicores = Some(8000);
            let (_, _, _, lat, lon) = REGIONS[rng.gen_range(0..REGIONS.len())];
            q.near = Some(Near {
                latitude: lat,
                longitude: lon,
                radius_km: rng.gen_range(100.0..800.0),
            });
        }
        Kind::DataText => {
            q.classes = vec![ResourceClass::Data];
            q.text = vec![["energy", "weather", "traffic", "health", "genomics"]
                [rng.gen_range(0..5)]
            .into()];
        }
        Kind::NetworkLatency => {
            q.classes = vec![ResourceClass::Network];
            q.max_latency_ms = Some(rng.gen_range(5.0..20.0));
            q.sort = SortKey::Green;
        }
        Kind::BroadRanked => {
            q.sort = SortKey::Uptime;
            q.limit = 50;
        }
        Kind::FacetsBroad => {
            q.classes = vec![ResourceClass::Compute];
            if rng.gen_bool(0.5) {
                q.gpu_models = vec![GPU_MODELS[rng.gen_range(0..GPU_MODELS.len())].1.into()];
                q.classes.clear();
            }
        }
    }
    q
}

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<usize>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn bar(len: usize, msg: &str) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template("{msg:>28} {bar:40} {pos}/{len} {elapsed}").expect("template"),
    );
    b.set_message(msg.to_string());
    b
}

async fn load(store: &CatalogStore, offers: &[catalog::Offer], label: &str) -> Result<f64> {
    let progress = bar(offers.len(), label);
    let start = Instant::now();
    for chunk in offers.chunks(1000) {
        store.publish_many(chunk, 1).await?;
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    Ok(start.elapsed().as_secs_f64())
}

struct Stats {
    p50: f64,
    p99: f64,
}

async fn time_sql(store: &CatalogStore, kind: Kind, queries: &[Query]) -> Result<Stats> {
    let mut samples = Vec::new();
    for q in queries {
        let t = Instant::now();
        if kind == Kind::FacetsBroad {
            store.sql_facets(q).await?;
        } else {
            store.sql_search(q).await?;
        }
        samples.push(t.elapsed());
    }
    Ok(Stats {
        p50: percentile(&mut samples, 0.5),
        p99: percentile(&mut samples, 0.99),
    })
}

async fn run() -> Result<()> {
    let cli = Cli::parse();
    let plans = cli.offers * cli.plans_per_offer;
    eprintln!(
        "generating {} offers × {} plans = {plans} plans",
        cli.offers, cli.plans_per_offer
    );
    let mut g = Generator::new(cli.seed, 2_000, false);
    let progress = bar(cli.offers, "generating");
    let offers: Vec<catalog::Offer> = (0..cli.offers)
        .map(|i| {
            progress.inc(1);
            g.offer(&format!("bench-{i}"), cli.plans_per_offer)
        })
        .collect();
    progress.finish_and_clear();

    let dir = tempfile::tempdir()?;
    let sqlite = CatalogStore::open(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("catalog.sqlite").display()
    ))
    .await?;
    let sqlite_load = load(&sqlite, &offers, "loading SQLite").await?;
    let pg_server = PgServer::start().context("starting PostgreSQL")?;
    let postgres = CatalogStore::open(&pg_server.create_database("bench")?).await?;
    let pg_load = load(&postgres, &offers, "loading PostgreSQL").await?;
    sqlx::query("ANALYZE").execute(postgres.pool()).await?;
    sqlx::query("ANALYZE").execute(sqlite.pool()).await?;
    drop(offers);

    // Rebuild the index from the database, as a broker does at start.
    let rss_before = rss_bytes();
    let start = Instant::now();
    // What IndexFollower::start does: read the active offers, build the index.
    let (sqlite_offers, _) = sqlite.active_offers().await?;
    let providers: Vec<String> = sqlite_offers.iter().map(|o| o.provider.clone()).collect();
    let mut index = Index::from_offers(sqlite_offers);
    let rebuild_sqlite = start.elapsed().as_secs_f64();
    // What the broker's prober gives the index: certified figures per provider (40% of them),
    // which the certified filters and sorts read.
    testkit::synth::certify_all(&mut index, providers.iter().map(String::as_str));
    let rss_after = rss_bytes();
    let start = Instant::now();
    let (pg_offers, _) = postgres.active_offers().await?;
    let pg_index = Index::from_offers(pg_offers);
    let rebuild_pg = start.elapsed().as_secs_f64();
    anyhow::ensure!(
        pg_index.len() == index.len(),
        "both databases hold the same catalog"
    );
    drop(pg_index);
    let plans_indexed = index.len();
    let column_bytes_per_plan = index.column_bytes() as f64 / plans_indexed as f64;
    let rss_per_plan = rss_after.saturating_sub(rss_before) as f64 / plans_indexed as f64;

    let mut rng = StdRng::seed_from_u64(cli.seed);
    let mut rows = Vec::new();
    let mut json_kinds = serde_json::Map::new();
    let mut worst_index_p99: f64 = 0.0;
    let mut min_ratio = f64::INFINITY;
    for (kind, label) in KINDS {
        let queries: Vec<Query> = (0..cli.index_runs).map(|_| query(kind, &mut rng)).collect();
        let mut samples = Vec::with_capacity(queries.len());
        let mut matched = 0usize;
        for q in &queries {
            let t = Instant::now();
            if kind == Kind::FacetsBroad {
                matched += index.facets(q).total;
            } else {
                matched += index.search(q).total;
            }
            samples.push(t.elapsed());
        }
        let idx = Stats {
            p50: percentile(&mut samples, 0.5),
            p99: percentile(&mut samples, 0.99),
        };
        let sql_queries = &queries[..cli.sql_runs.min(queries.len())];
        let lite = time_sql(&sqlite, kind, sql_queries).await?;
        let pg = time_sql(&postgres, kind, sql_queries).await?;
        worst_index_p99 = worst_index_p99.max(idx.p99);
        let ratio_lite = lite.p50 / idx.p50;
        let ratio_pg = pg.p50 / idx.p50;
        min_ratio = min_ratio.min(ratio_lite).min(ratio_pg);
        rows.push((
            label,
            idx.p50,
            idx.p99,
            lite.p50,
            lite.p99,
            pg.p50,
            pg.p99,
            ratio_lite,
            ratio_pg,
            matched / queries.len(),
        ));
        json_kinds.insert(
            label.to_string(),
            serde_json::json!({
                "index_p50_ms": idx.p50, "index_p99_ms": idx.p99,
                "sqlite_p50_ms": lite.p50, "sqlite_p99_ms": lite.p99,
                "postgres_p50_ms": pg.p50, "postgres_p99_ms": pg.p99,
                "ratio_sqlite_p50": ratio_lite, "ratio_postgres_p50": ratio_pg,
                "avg_matches": matched / queries.len(),
            }),
        );
    }

    println!(
        "catalog: {plans_indexed} plans in {} offers",
        index.offers()
    );
    println!(
        "{:<40}{:>10}{:>10}{:>11}{:>11}{:>10}{:>10}{:>9}{:>9}{:>10}",
        "query (ms)",
        "idx p50",
        "idx p99",
        "sqlite p50",
        "sqlite p99",
        "pg p50",
        "pg p99",
        "×sqlite",
        "×pg",
        "matches"
    );
    for (label, a, b, c, d, e, f, r1, r2, m) in &rows {
        println!("{label:<40}{a:>10.3}{b:>10.3}{c:>11.2}{d:>11.2}{e:>10.2}{f:>10.2}{r1:>9.0}{r2:>9.0}{m:>10}");
    }
    println!("index memory: {column_bytes_per_plan:.0} B/plan in columns and posting lists, {rss_per_plan:.0} B/plan resident with the offers");
    println!("index rebuild from SQLite {rebuild_sqlite:.1} s, from PostgreSQL {rebuild_pg:.1} s; bulk load SQLite {sqlite_load:.1} s, PostgreSQL {pg_load:.1} s");
    println!(
        "{}",
        serde_json::json!({
            "bench": "catalog",
            "plans": plans_indexed,
            "offers": index.offers(),
            "queries": json_kinds,
            "worst_index_p99_ms": worst_index_p99,
            "min_ratio_sql_over_index_p50": min_ratio,
            "index_bytes_per_plan": column_bytes_per_plan.round(),
            "resident_bytes_per_plan": rss_per_plan.round(),
            "rebuild_from_sqlite_s": rebuild_sqlite,
            "rebuild_from_postgres_s": rebuild_pg,
            "load_sqlite_s": sqlite_load,
            "load_postgres_s": pg_load,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
