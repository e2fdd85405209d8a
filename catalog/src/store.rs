//! Offer storage on SQLite (the embedded default) and PostgreSQL (production), through one set of
//! SQL statements (`$n` parameters, `ON CONFLICT` upserts) and a migration set per backend.
//!
//! Every publish or withdrawal writes, in one transaction: the offer's current row, its version
//! history, its plan rows (what plain SQL queries run on) and an entry in the change log that
//! every index follows. On PostgreSQL writers serialise on an advisory lock so the change log's
//! sequence numbers commit in order and a follower reading "after seq N" never skips one.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::model::{Offer, ResourceClass};
use crate::query::{self, Query, SortKey};
use crate::row::{self, PlanRow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://… or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot open the catalog database: {0}")]
    Open(sqlx::Error),
    #[error("cannot migrate the catalog database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("catalog database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("offer {id} is at version {current}; an update must be version {}", current + 1)]
    VersionConflict { id: String, current: u64 },
    #[error("offer {id} does not exist yet, so its first version must be 1")]
    NotFirstVersion { id: String },
    #[error("offer {0} belongs to another provider")]
    NotOwner(String),
    #[error("offer {0} does not exist")]
    NotFound(String),
    #[error("offer {0} is withdrawn; publish it under a new id")]
    Withdrawn(String),
    #[error("stored offer {id} cannot be read: {reason}")]
    Corrupt { id: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Published,
    Withdrawn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub offer_id: String,
    pub version: u64,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredOffer {
    pub offer: Offer,
    pub withdrawn_at: Option<u64>,
}

#[derive(Clone)]
pub struct CatalogStore {
    pool: AnyPool,
    backend: Backend,
}

const PLAN_COLUMNS: &str = "offer_id, plan_index, plan_id, has_compute, has_gpu, has_network, has_data, main_class, \
    provider, country, region, architecture, gpu_model, cpu_millicores, memory_mib, gpu_memory_mib, gpu_permille, \
    bandwidth_mbps, latency_ms, price_compute, price_gpu, price_network, price_data, latitude, longitude, green, \
    cert_latency_ms, cert_uptime, tiebreak, words";
const PLAN_PARAMS: usize = 30;

/// A plan row ready for SQL: its offer, the offer's words (space-delimited, for LIKE) and the row.
type SqlRow<'a> = (&'a Offer, std::sync::Arc<str>, PlanRow);

/// The offer's plan rows, with the words computed once for all of them.
fn sql_rows(offer: &Offer) -> Vec<SqlRow<'_>> {
    let words: std::sync::Arc<str> = format!(" {} ", row::words(offer).join(" ")).into();
    row::plan_rows(offer)
        .into_iter()
        .map(|r| (offer, words.clone(), r))
        .collect()
}

/// Rows per multi-row INSERT: PostgreSQL takes big statements well (under its 65,535-parameter
/// limit); SQLite parses huge VALUES lists slowly, so it gets short ones.
fn rows_per_statement(backend: Backend) -> usize {
    match backend {
        Backend::Postgres => 1000,
        Backend::Sqlite => 32,
    }
}

fn parse_body(id: &str, body: &str) -> Result<Offer, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        id: id.to_string(),
        reason: e.to_string(),
    })
}

/// The current row of an offer, for a write that checks owner and status.
#[derive(sqlx::FromRow)]
struct CurrentRow {
    version: i64,
    provider: String,
    status: String,
}

async fn current_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
) -> Result<Option<(i64, String, String)>, StoreError> {
    let row: Option<CurrentRow> =
        sqlx::query_as("SELECT version, provider, status FROM offers WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|r| (r.version, r.provider, r.status)))
}

#[derive(sqlx::FromRow)]
struct OfferRow {
    id: String,
    body: String,
    withdrawn_at: Option<i64>,
}

impl OfferRow {
    fn into_stored(self) -> Result<StoredOffer, StoreError> {
        Ok(StoredOffer {
            offer: parse_body(&self.id, &self.body)?,
            withdrawn_at: self
                .withdrawn_at
                .map(|t| unsigned("offers", "withdrawn_at", t))
                .transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    seq: i64,
    offer_id: String,
    version: i64,
    kind: String,
}

impl ChangeRow {
    fn into_change(self) -> Result<Change, StoreError> {
        let kind = match self.kind.as_str() {
            "published" => ChangeKind::Published,
            "withdrawn" => ChangeKind::Withdrawn,
            other => {
                return Err(StoreError::Corrupt {
                    id: self.offer_id,
                    reason: format!("offer_changes.kind is {other:?}"),
                })
            }
        };
        Ok(Change {
            seq: unsigned("offer_changes", "seq", self.seq)?,
            version: unsigned("offer_changes", "version", self.version)?,
            offer_id: self.offer_id,
            kind,
        })
    }
}

/// A stored integer that cannot be negative.
fn unsigned(table: &str, column: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        id: table.to_string(),
        reason: format!("{table}.{column} is {v}"),
    })
}

impl Backend {
    /// The backend a database URL names.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    /// The backend of an open connection.
    pub fn of_connection(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Self::Sqlite
        } else {
            Self::Postgres
        }
    }

    /// The `n`th (from 1) bind parameter of a statement that names each parameter once, in bind
    /// order. SQLite takes `$N` as a name and looks every one up by name when it prepares a
    /// statement, which costs more than the rows of a multi-row INSERT; plain `?` is positional.
    pub fn param(self, n: usize) -> String {
        match self {
            Self::Sqlite => "?".into(),
            Self::Postgres => format!("${n}"),
        }
    }
}

/// What every SQLite connection needs for concurrent use: WAL, a busy timeout, normal sync; and
/// a page cache of up to 32 MiB (the default 2 MiB thrashes on the index's bulk writes).
pub async fn prepare_sqlite(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA busy_timeout = 5000",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA cache_size = -32768",
    ] {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    Ok(())
}

impl CatalogStore {
    /// The catalog on a pool its owner opened (the broker tunes its own pool); runs the catalog's
    /// migrations.
    pub async fn attach(pool: AnyPool, backend: Backend) -> Result<Self, StoreError> {
        // The broker's own migrations share the database (other version numbers), hence
        // ignore_missing.
        let mut migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        Ok(Self { pool, backend })
    }

    /// Opens the catalog alone, on a small default pool (tools, tests and the benchmark).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let pool = AnyPoolOptions::new()
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        prepare_sqlite(conn).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(StoreError::Open)?;
        Self::attach(pool, backend).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A write transaction that holds the catalog's write lock: `BEGIN IMMEDIATE` on SQLite (so
    /// a read-then-write never fails on a lock upgrade), an advisory lock on PostgreSQL (so the
    /// change log's sequence numbers commit in order). Callers may add their own rows to it.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        if self.backend == Backend::Sqlite {
            return Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?);
        }
        let mut tx = self.pool.begin().await?;
        {
            sqlx::query("SELECT pg_advisory_xact_lock(7270001)")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Publishes a new offer (version 1) or a new version of an existing one (current + 1) by the
    /// same provider. Returns the change's sequence number.
    pub async fn publish(&self, offer: &Offer, now: u64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let seq = Self::publish_in(&mut tx, offer, now).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Publishes many new offers in one transaction (bulk loading).
    pub async fn publish_many(&self, offers: &[Offer], now: u64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut seq = 0;
        for chunk in offers.chunks(200) {
            for o in chunk {
                seq = Self::record(&mut tx, o, now).await?;
            }
            let rows: Vec<SqlRow> = chunk.iter().flat_map(sql_rows).collect();
            self.insert_rows(&mut tx, &rows).await?;
        }
        tx.commit().await?;
        Ok(seq)
    }

    async fn insert_rows(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        rows: &[SqlRow<'_>],
    ) -> Result<(), StoreError> {
        Self::insert_plan_rows(tx, self.backend, rows, rows_per_statement(self.backend)).await
    }

    /// `publish` inside the caller's transaction (from `begin_write`).
    pub async fn publish_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        offer: &Offer,
        now: u64,
    ) -> Result<u64, StoreError> {
        let current = current_row(tx, &offer.id).await?;
        match current {
            None if offer.version != 1 => {
                return Err(StoreError::NotFirstVersion {
                    id: offer.id.clone(),
                })
            }
            None => {}
            Some((_, provider, _)) if provider != offer.provider => {
                return Err(StoreError::NotOwner(offer.id.clone()))
            }
            Some((_, _, status)) if status == "withdrawn" => {
                return Err(StoreError::Withdrawn(offer.id.clone()))
            }
            Some((v, _, _)) if u64::from(offer.version) != v as u64 + 1 => {
                return Err(StoreError::VersionConflict {
                    id: offer.id.clone(),
                    current: v as u64,
                })
            }
            Some(_) => {}
        }
        sqlx::query("DELETE FROM plans WHERE offer_id = $1")
            .bind(&offer.id)
            .execute(&mut **tx)
            .await?;
        let seq = Self::record(tx, offer, now).await?;
        let rows = sql_rows(offer);
        let backend = Backend::of_connection(tx);
        Self::insert_plan_rows(tx, backend, &rows, 64).await?;
        Ok(seq)
    }

    /// Writes the offer row, its version and the change entry.
    async fn record(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        offer: &Offer,
        now: u64,
    ) -> Result<u64, StoreError> {
        let body = serde_json::to_string(offer).expect("offer serialises");
        sqlx::query(
            "INSERT INTO offers (id, version, provider, status, body, updated_at) VALUES ($1, $2, $3, 'active', $4, $5) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, body = excluded.body, updated_at = excluded.updated_at",
        )
        .bind(&offer.id)
        .bind(i64::from(offer.version))
        .bind(&offer.provider)
        .bind(&body)
        .bind(now as i64)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO offer_versions (id, version, body, recorded_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&offer.id)
        .bind(i64::from(offer.version))
        .bind(&body)
        .bind(now as i64)
        .execute(&mut **tx)
        .await?;
        let seq: i64 = sqlx::query_scalar("INSERT INTO offer_changes (offer_id, version, kind, at) VALUES ($1, $2, 'published', $3) RETURNING seq")
            .bind(&offer.id)
            .bind(i64::from(offer.version))
            .bind(now as i64)
            .fetch_one(&mut **tx)
            .await?;
        Ok(seq as u64)
    }

    async fn insert_plan_rows(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        backend: Backend,
        rows: &[SqlRow<'_>],
        per_statement: usize,
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(per_statement) {
            let mut sql = format!("INSERT INTO plans ({PLAN_COLUMNS}) VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for j in 0..PLAN_PARAMS {
                    if j > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&backend.param(i * PLAN_PARAMS + j + 1));
                }
                sql.push(')');
            }
            let mut q = sqlx::query(&sql);
            for (offer, words, r) in chunk {
                let has = |c: ResourceClass| r.classes & (1 << c as u8) != 0;
                q = q
                    .bind(offer.id.clone())
                    .bind(r.plan_index as i64)
                    .bind(r.plan_id.clone())
                    .bind(has(ResourceClass::Compute))
                    .bind(has(ResourceClass::Gpu))
                    .bind(has(ResourceClass::Network))
                    .bind(has(ResourceClass::Data))
                    .bind(r.main_class as i64)
                    .bind(offer.provider.clone())
                    .bind(offer.location.country.clone())
                    .bind(offer.location.region.clone())
                    .bind(r.architecture.clone())
                    .bind(r.gpu_model.clone())
                    .bind(i64::from(r.cpu_millicores))
                    .bind(i64::from(r.memory_mib))
                    .bind(i64::from(r.gpu_memory_mib))
                    .bind(i64::from(r.gpu_permille))
                    .bind(i64::from(r.bandwidth_mbps))
                    .bind(f64::from(r.latency_ms))
                    .bind(f64::from(r.price[0]))
                    .bind(f64::from(r.price[1]))
                    .bind(f64::from(r.price[2]))
                    .bind(f64::from(r.price[3]))
                    .bind(f64::from(r.latitude))
                    .bind(f64::from(r.longitude))
                    .bind(i64::from(r.green))
                    // Certified figures live in the broker's credentials, not in the stored
                    // offer: these columns hold "not certified" (the SQL baseline never has any).
                    .bind(f64::INFINITY)
                    .bind(-1.0f64)
                    .bind(row::tiebreak_sql(r.tiebreak))
                    .bind(words.to_string());
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Withdraws an offer: it stops being offered, stays readable with its history.
    pub async fn withdraw(&self, id: &str, provider: &str, now: u64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let seq = Self::withdraw_in(&mut tx, id, provider, now).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// `withdraw` inside the caller's transaction (from `begin_write`).
    pub async fn withdraw_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        provider: &str,
        now: u64,
    ) -> Result<u64, StoreError> {
        let current = current_row(tx, id).await?;
        let version = match current {
            None => return Err(StoreError::NotFound(id.to_string())),
            Some((_, p, _)) if p != provider => return Err(StoreError::NotOwner(id.to_string())),
            Some((_, _, s)) if s == "withdrawn" => {
                return Err(StoreError::Withdrawn(id.to_string()))
            }
            Some((v, _, _)) => v,
        };
        sqlx::query("UPDATE offers SET status = 'withdrawn', withdrawn_at = $1 WHERE id = $2")
            .bind(now as i64)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM plans WHERE offer_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        let seq: i64 = sqlx::query_scalar("INSERT INTO offer_changes (offer_id, version, kind, at) VALUES ($1, $2, 'withdrawn', $3) RETURNING seq")
            .bind(id)
            .bind(version)
            .bind(now as i64)
            .fetch_one(&mut **tx)
            .await?;
        Ok(seq as u64)
    }

    pub async fn get(&self, id: &str) -> Result<Option<StoredOffer>, StoreError> {
        let row: Option<OfferRow> =
            sqlx::query_as("SELECT id, body, withdrawn_at FROM offers WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(OfferRow::into_stored).transpose()
    }

    /// Every version of an offer, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<Offer>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT body FROM offer_versions WHERE id = $1 ORDER BY version")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|(body,)| parse_body(id, body)).collect()
    }

    /// All active offers and the change sequence they reflect (for rebuilding an index).
    pub async fn active_offers(&self) -> Result<(Vec<Offer>, u64), StoreError> {
        let mut tx = self.pool.begin().await?;
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM offer_changes")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, body FROM offers WHERE status = 'active'")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let offers = rows
            .iter()
            .map(|(id, body)| parse_body(id, body))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((offers, unsigned("offer_changes", "seq", seq)?))
    }

    /// Changes after `seq`, oldest first.
    pub async fn changes_since(&self, seq: u64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let rows: Vec<ChangeRow> = sqlx::query_as(
            "SELECT seq, offer_id, version, kind FROM offer_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ChangeRow::into_change).collect()
    }

    /// The plain-SQL answer to `q` (the benchmark's baseline and the index's cross-check):
    /// (offer id, plan index) in sort order, one page, and the total count.
    pub async fn sql_search(&self, q: &Query) -> Result<(Vec<(String, usize)>, usize), StoreError> {
        let (where_sql, params) = where_clause(q);
        let key = sort_expr(q);
        let limit = q.limit.clamp(1, query::MAX_LIMIT);
        let mut page_sql = format!(
            "SELECT offer_id, plan_index, latitude, longitude FROM plans WHERE {where_sql} ORDER BY {key}, tiebreak"
        );
        // A distance filter is a bounding box in SQL and an exact check here, so no LIMIT then.
        if q.near.is_none() {
            page_sql.push_str(&format!(" LIMIT {limit}"));
        }
        let mut page = sqlx::query(&page_sql);
        for p in &params {
            page = p.bind(page);
        }
        let rows = page.fetch_all(&self.pool).await?;
        let within = |r: &AnyRow| {
            q.near.is_none_or(|n| {
                let (lat, lon): (f64, f64) = (
                    r.try_get("latitude").unwrap_or(f64::NAN),
                    r.try_get("longitude").unwrap_or(f64::NAN),
                );
                query::distance_km(n.latitude, n.longitude, lat, lon) <= n.radius_km
            })
        };
        let hits: Vec<(String, usize)> = rows
            .iter()
            .filter(|r| within(r))
            .map(|r| {
                let index: i64 = r.try_get("plan_index")?;
                Ok((r.try_get("offer_id")?, index as usize))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let total = if q.near.is_some() {
            hits.len()
        } else {
            let count_sql = format!("SELECT COUNT(*) FROM plans WHERE {where_sql}");
            let mut count = sqlx::query(&count_sql);
            for p in &params {
                count = p.bind(count);
            }
            count.fetch_one(&self.pool).await?.try_get::<i64, _>(0)? as usize
        };
        Ok((hits.into_iter().take(limit).collect(), total))
    }

    /// Facet counts in plain SQL (GROUP BY per facet), the baseline for `Index::facets`.
    pub async fn sql_facets(&self, q: &Query) -> Result<Vec<(String, String, usize)>, StoreError> {
        let (where_sql, params) = where_clause(q);
        let mut out = Vec::new();
        for (facet, expr) in [
            ("region", "region"),
            ("gpuModel", "gpu_model"),
            ("class", "CASE WHEN has_gpu THEN 'gpu' WHEN has_compute THEN 'compute' WHEN has_network THEN 'network' ELSE 'data' END"),
        ] {
            let sql = format!("SELECT {expr} AS name, COUNT(*) AS n FROM plans WHERE {where_sql} GROUP BY {expr}");
            let mut query = sqlx::query(&sql);
            for p in &params {
                query = p.bind(query);
            }
            for r in query.fetch_all(&self.pool).await? {
                let name: Option<String> = r.try_get("name")?;
                if let Some(name) = name {
                    let n: i64 = r.try_get("n")?;
                    out.push((facet.to_string(), name, n as usize));
                }
            }
        }
        Ok(out)
    }
}

enum Param {
    I(i64),
    F(f64),
    S(String),
}

impl Param {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Self::I(v) => q.bind(*v),
            Self::F(v) => q.bind(*v),
            Self::S(v) => q.bind(v.as_str()),
        }
    }
}

fn price_expr(q: &Query) -> &'static str {
    match query::price_class(q) {
        Some(ResourceClass::Compute) => "price_compute",
        Some(ResourceClass::Gpu) => "price_gpu",
        Some(ResourceClass::Network) => "price_network",
        Some(ResourceClass::Data) => "price_data",
        None => "(CASE main_class WHEN 0 THEN price_compute WHEN 1 THEN price_gpu WHEN 2 THEN price_network ELSE price_data END)",
    }
}

fn sort_expr(q: &Query) -> String {
    match q.sort {
        SortKey::Price => price_expr(q).to_string(),
        SortKey::Latency => "cert_latency_ms".into(),
        SortKey::Uptime => "cert_uptime DESC".into(),
        SortKey::Green => "green DESC".into(),
        SortKey::Reputation => "tiebreak".into(),
    }
}

/// The WHERE clause of `q` with `$n` parameters.
fn where_clause(q: &Query) -> (String, Vec<Param>) {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let push = |params: &mut Vec<Param>, p: Param| {
        params.push(p);
        format!("${}", params.len())
    };
    for c in &q.classes {
        conds.push(format!("has_{} = TRUE", c.as_str()));
    }
    for (col, values) in [
        ("provider", &q.providers),
        ("country", &q.countries),
        ("region", &q.regions),
        ("gpu_model", &q.gpu_models),
        ("architecture", &q.architectures),
    ] {
        if !values.is_empty() {
            let list: Vec<String> = values
                .iter()
                .map(|v| push(&mut params, Param::S(v.clone())))
                .collect();
            conds.push(format!("{col} IN ({})", list.join(",")));
        }
    }
    for word in q
        .text
        .iter()
        .flat_map(|t| query::tokens(t).collect::<Vec<_>>())
    {
        let p = push(&mut params, Param::S(format!("% {word} %")));
        conds.push(format!("words LIKE {p}"));
    }
    let mut min = |col: &str, v: Option<u64>, params: &mut Vec<Param>| {
        if let Some(v) = v {
            let p = push(params, Param::I(v.min(i64::MAX as u64) as i64));
            conds.push(format!("{col} >= {p}"));
        }
    };
    min("cpu_millicores", q.min_cpu_millicores, &mut params);
    min("memory_mib", q.min_memory_mib, &mut params);
    min("gpu_memory_mib", q.min_gpu_memory_mib, &mut params);
    min(
        "gpu_permille",
        q.min_gpu_permille.map(u64::from),
        &mut params,
    );
    min("bandwidth_mbps", q.min_bandwidth_mbps, &mut params);
    min("green", q.min_green.map(u64::from), &mut params);
    let mut cmp = |expr: &str, op: &str, v: Option<f64>, params: &mut Vec<Param>| {
        if let Some(v) = v {
            // Compare at the index's precision (f32) so both engines draw the same line.
            let p = push(params, Param::F(f64::from(v as f32)));
            conds.push(format!("{expr} {op} {p}"));
        }
    };
    cmp("latency_ms", "<=", q.max_latency_ms, &mut params);
    cmp(
        "cert_latency_ms",
        "<=",
        q.max_certified_latency_ms,
        &mut params,
    );
    cmp("cert_uptime", ">=", q.min_certified_uptime, &mut params);
    if q.verified_only || !q.certified_by.is_empty() {
        cmp("1", "=", Some(0.0), &mut params);
    }
    cmp(price_expr(q), "<=", q.max_price, &mut params);
    if let Some(n) = q.near {
        let dlat = n.radius_km / 111.0;
        let dlon = n.radius_km / (111.0 * n.latitude.to_radians().cos().abs().max(0.01));
        let a = push(&mut params, Param::F(n.latitude - dlat));
        let b = push(&mut params, Param::F(n.latitude + dlat));
        let c = push(&mut params, Param::F(n.longitude - dlon));
        let d = push(&mut params, Param::F(n.longitude + dlon));
        conds.push(format!(
            "latitude BETWEEN {a} AND {b} AND longitude BETWEEN {c} AND {d}"
        ));
    }
    if conds.is_empty() {
        conds.push("TRUE".into());
    }
    (conds.join(" AND "), params)
}
