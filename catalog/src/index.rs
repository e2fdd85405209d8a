//! The in-memory query engine: one row per plan in columns (struct of arrays), posting lists for
//! the categorical attributes and the words of the text, and a scan that starts from the most
//! selective posting list. Writes replace an offer's rows in place (old rows are marked dead and
//! compacted away later), so the index follows every change without a rebuild.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use crate::model::{Offer, ResourceClass};
use crate::query::{self, Cursor, FacetCount, Facets, Query, SortKey, PRICE_BUCKETS};
use crate::row;

const NONE16: u16 = u16::MAX;
const DEAD: u8 = 0x80;

/// Interned strings: a code per distinct value.
#[derive(Default)]
struct Dict {
    codes: HashMap<String, u32>,
    names: Vec<String>,
}

impl Dict {
    fn code(&mut self, s: &str) -> u32 {
        if let Some(c) = self.codes.get(s) {
            return *c;
        }
        let c = self.names.len() as u32;
        self.names.push(s.to_string());
        self.codes.insert(s.to_string(), c);
        c
    }

    fn get(&self, s: &str) -> Option<u32> {
        self.codes.get(s).copied()
    }
}

#[derive(Default)]
struct Columns {
    offer: Vec<Arc<Offer>>,
    plan: Vec<u16>,
    /// Class bits (bit i = class i) and `DEAD` for rows of replaced or withdrawn offers: one
    /// byte answers both first questions of every scan.
    classes: Vec<u8>,
    main_class: Vec<u8>,
    provider: Vec<u32>,
    country: Vec<u16>,
    region: Vec<u16>,
    arch: Vec<u16>,
    gpu_model: Vec<u16>,
    cpu: Vec<u32>,
    memory: Vec<u32>,
    gpu_memory: Vec<u32>,
    gpu_permille: Vec<u32>,
    bandwidth: Vec<u32>,
    latency: Vec<f32>,
    /// Normalised price per class (compute, gpu, network, data).
    price: Vec<[f32; 4]>,
    lat: Vec<f32>,
    lon: Vec<f32>,
    /// Unit vector of the location, for a trig-free distance test.
    xyz: Vec<[f32; 3]>,
    green: Vec<u8>,
    cert_latency: Vec<f32>,
    cert_uptime: Vec<f32>,
    /// `VERIFIED` when the provider holds a valid verified-provider credential.
    cert_flags: Vec<u8>,
    /// Who certified the row's metrics (`NONE16`: nobody).
    cert_issuer: Vec<u16>,
    tiebreak: Vec<u64>,
}

const VERIFIED: u8 = 1;

/// What the broker could verify about a provider: the figures of its valid, unrevoked
/// credentials of one issuer. The catalog filters and ranks on these only; an offer's own
/// `declaredMetrics` are the provider's claims and never used here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Certification {
    pub issuer: String,
    pub latency_ms: Option<f64>,
    pub uptime_percent: Option<f64>,
    pub verified: bool,
    /// The credentials behind the figures, as listings show them.
    pub metrics: Vec<crate::model::CertifiedMetric>,
}

#[derive(Default)]
struct Postings {
    class: [Vec<u32>; 4],
    provider: HashMap<u32, Vec<u32>>,
    country: HashMap<u16, Vec<u32>>,
    region: HashMap<u16, Vec<u32>>,
    gpu_model: HashMap<u16, Vec<u32>>,
    token: HashMap<String, Vec<u32>>,
    /// Rows per 1°×1° cell of latitude and longitude, for distance filters.
    grid: HashMap<(i16, i16), Vec<u32>>,
}

fn unit_vector(lat: f64, lon: f64) -> [f32; 3] {
    let (la, lo) = (lat.to_radians(), lon.to_radians());
    [
        (la.cos() * lo.cos()) as f32,
        (la.cos() * lo.sin()) as f32,
        la.sin() as f32,
    ]
}

fn cell(lat: f32, lon: f32) -> (i16, i16) {
    (lat.floor() as i16, lon.floor() as i16)
}

/// Cells a distance query may consider before a plain scan is cheaper.
const MAX_GRID_CELLS: usize = 4096;
/// Candidate sets at least this large are scanned on several threads.
const PARALLEL_ROWS: usize = 100_000;

/// Rows a query has to look at.
enum Candidates<'a> {
    All(usize),
    List(&'a [u32]),
    Owned(Vec<u32>),
}

impl Candidates<'_> {
    fn len(&self) -> usize {
        match self {
            Self::All(n) => *n,
            Self::List(l) => l.len(),
            Self::Owned(v) => v.len(),
        }
    }
}

/// The index. Not synchronised: the broker keeps it behind a `RwLock`.
#[derive(Default)]
pub struct Index {
    cols: Columns,
    post: Postings,
    providers: Dict,
    countries: Dict,
    regions: Dict,
    archs: Dict,
    gpu_models: Dict,
    /// Live rows of each current offer.
    rows_of: HashMap<String, Vec<u32>>,
    offers: HashMap<String, Arc<Offer>>,
    reputation: HashMap<String, f32>,
    certified: HashMap<String, Arc<Certification>>,
    issuers: Dict,
    dead: usize,
    /// Candidate sets at least this large are scanned on several threads (0 = the default).
    parallel_rows: usize,
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Hit {
    pub offer: Arc<Offer>,
    pub plan_index: usize,
    /// The sort key (ascending order; "highest first" sorts store the negated value).
    pub key: f64,
}

impl Hit {
    pub fn plan(&self) -> &crate::model::Plan {
        &self.offer.plans[self.plan_index]
    }
}

#[derive(Debug, Clone)]
pub struct Page {
    pub hits: Vec<Hit>,
    pub total: usize,
    pub next: Option<Cursor>,
}

fn class_bit(c: ResourceClass) -> u8 {
    1 << (c as u8)
}

fn class_index(c: ResourceClass) -> usize {
    c as usize
}

#[derive(PartialEq)]
struct Ranked {
    key: f64,
    tiebreak: u64,
    row: u32,
}

impl Eq for Ranked {}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .total_cmp(&other.key)
            .then(self.tiebreak.cmp(&other.tiebreak))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A query compiled against the index's dictionaries.
struct Compiled<'q> {
    q: &'q Query,
    class_mask: u8,
    providers: Option<Vec<u32>>,
    countries: Option<Vec<u16>>,
    regions: Option<Vec<u16>>,
    archs: Option<Vec<u16>>,
    gpu_models: Option<Vec<u16>>,
    issuers: Option<Vec<u16>>,
    tokens: Vec<String>,
    price_class: Option<usize>,
    bbox: Option<(f32, f32, f32, f32)>,
    /// For a distance filter: the centre's unit vector and cos(radius / R); rows whose dot
    /// product is clearly above (inside) or below (outside) skip the exact great-circle test.
    sphere: Option<([f32; 3], f32)>,
    /// No filter but classes: rows need only the alive and class checks.
    plain: bool,
    /// A filter value the index has never seen: nothing can match.
    impossible: bool,
    /// Whether any set-valued / numeric filter is present (rows skip the checks otherwise).
    sets: bool,
    numeric: bool,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_offers(offers: impl IntoIterator<Item = Offer>) -> Self {
        let mut index = Self::new();
        for o in offers {
            index.upsert(o);
        }
        index
    }

    pub fn len(&self) -> usize {
        self.cols.offer.len() - self.dead
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn offers(&self) -> usize {
        self.offers.len()
    }

    pub fn offer(&self, id: &str) -> Option<Arc<Offer>> {
        self.offers.get(id).cloned()
    }

    /// Candidate sets at least `rows` large are scanned on all cores.
    pub fn set_parallel_threshold(&mut self, rows: usize) {
        self.parallel_rows = rows.max(1);
    }

    pub fn set_reputation(&mut self, provider: &str, score: f32) {
        self.reputation.insert(provider.to_string(), score);
    }

    pub fn reputation(&self, provider: &str) -> Option<f32> {
        self.reputation.get(provider).copied()
    }

    /// What is certified about `provider` (none: nothing any more); its rows change at once.
    pub fn set_certification(&mut self, provider: &str, c: Option<Certification>) {
        match c {
            Some(c) => {
                self.certified.insert(provider.to_string(), Arc::new(c));
            }
            None => {
                self.certified.remove(provider);
            }
        }
        let Some(code) = self.providers.get(provider) else {
            return;
        };
        let (lat, up, flags, issuer) = self.cert_columns(provider);
        if let Some(rows) = self.post.provider.get(&code) {
            for &r in rows {
                let r = r as usize;
                self.cols.cert_latency[r] = lat;
                self.cols.cert_uptime[r] = up;
                self.cols.cert_flags[r] = flags;
                self.cols.cert_issuer[r] = issuer;
            }
        }
    }

    pub fn certification(&self, provider: &str) -> Option<Arc<Certification>> {
        self.certified.get(provider).cloned()
    }

    /// A provider's certified columns: latency, uptime, flags, issuer code.
    fn cert_columns(&mut self, provider: &str) -> (f32, f32, u8, u16) {
        match self.certified.get(provider).cloned() {
            None => (f32::INFINITY, -1.0, 0, NONE16),
            Some(c) => (
                c.latency_ms.map_or(f32::INFINITY, |v| v as f32),
                c.uptime_percent.map_or(-1.0, |v| v as f32),
                if c.verified { VERIFIED } else { 0 },
                self.issuers.code(&c.issuer) as u16,
            ),
        }
    }

    /// Adds an offer or replaces its current version.
    pub fn upsert(&mut self, offer: Offer) {
        self.insert(Arc::new(offer));
    }

    fn insert(&mut self, offer: Arc<Offer>) {
        self.remove(&offer.id);
        let provider = self.providers.code(&offer.provider);
        let country = self.countries.code(&offer.location.country) as u16;
        let region = self.regions.code(&offer.location.region) as u16;
        let words = row::words(&offer);
        let (cert_latency, cert_uptime, cert_flags, cert_issuer) =
            self.cert_columns(&offer.provider);
        let mut rows = Vec::with_capacity(offer.plans.len());
        for p in row::plan_rows(&offer) {
            let row = self.cols.offer.len() as u32;
            let arch = p
                .architecture
                .as_deref()
                .map_or(NONE16, |a| self.archs.code(a) as u16);
            let gpu_model = p
                .gpu_model
                .as_deref()
                .map_or(NONE16, |g| self.gpu_models.code(g) as u16);
            let c = &mut self.cols;
            c.offer.push(offer.clone());
            c.plan.push(p.plan_index as u16);
            c.classes.push(p.classes);
            c.main_class.push(p.main_class as u8);
            c.provider.push(provider);
            c.country.push(country);
            c.region.push(region);
            c.arch.push(arch);
            c.gpu_model.push(gpu_model);
            c.cpu.push(p.cpu_millicores);
            c.memory.push(p.memory_mib);
            c.gpu_memory.push(p.gpu_memory_mib);
            c.gpu_permille.push(p.gpu_permille);
            c.bandwidth.push(p.bandwidth_mbps);
            c.latency.push(p.latency_ms);
            c.price.push(p.price);
            c.lat.push(p.latitude);
            c.lon.push(p.longitude);
            c.xyz
                .push(unit_vector(f64::from(p.latitude), f64::from(p.longitude)));
            c.green.push(p.green);
            c.cert_latency.push(cert_latency);
            c.cert_uptime.push(cert_uptime);
            c.cert_flags.push(cert_flags);
            c.cert_issuer.push(cert_issuer);
            c.tiebreak.push(p.tiebreak);
            for (i, list) in self.post.class.iter_mut().enumerate() {
                if p.classes & (1 << i) != 0 {
                    list.push(row);
                }
            }
            self.post.provider.entry(provider).or_default().push(row);
            self.post.country.entry(country).or_default().push(row);
            self.post.region.entry(region).or_default().push(row);
            if gpu_model != NONE16 {
                self.post.gpu_model.entry(gpu_model).or_default().push(row);
            }
            for w in &words {
                self.post.token.entry(w.clone()).or_default().push(row);
            }
            self.post
                .grid
                .entry(cell(p.latitude, p.longitude))
                .or_default()
                .push(row);
            rows.push(row);
        }
        self.rows_of.insert(offer.id.clone(), rows);
        self.offers.insert(offer.id.clone(), offer);
    }

    /// Removes an offer (withdrawn); its rows stop matching at once.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(rows) = self.rows_of.remove(id) else {
            return false;
        };
        for r in &rows {
            self.cols.classes[*r as usize] |= DEAD;
        }
        self.dead += rows.len();
        self.offers.remove(id);
        if self.dead > 4096 && self.dead * 4 > self.cols.offer.len() {
            self.compact();
        }
        true
    }

    /// Rebuilds the columns without dead rows.
    pub fn compact(&mut self) {
        // The offers are shared, not copied: only the columns are rebuilt.
        let offers: Vec<Arc<Offer>> = self.offers.values().cloned().collect();
        let reputation = std::mem::take(&mut self.reputation);
        let certified = std::mem::take(&mut self.certified);
        let parallel_rows = self.parallel_rows;
        *self = Self::new();
        self.certified = certified;
        for offer in offers {
            self.insert(offer);
        }
        self.reputation = reputation;
        self.parallel_rows = parallel_rows;
    }

    /// Bytes held by the columns and posting lists (not counting the offers themselves).
    pub fn column_bytes(&self) -> usize {
        let c = &self.cols;
        let n = c.offer.len();
        // offer, plan, classes, main class, provider, country, region, arch, gpu model,
        // six u32/f32 quantities, four prices, lat, lon, xyz, green, two metrics, tie-break
        let per_row =
            8 + 2 + 1 + 1 + 1 + 4 + 2 + 2 + 2 + 2 + 4 * 6 + 16 + 4 + 4 + 12 + 1 + 4 + 4 + 1 + 2 + 8;
        let postings: usize = self.post.class.iter().map(Vec::len).sum::<usize>()
            + self.post.provider.values().map(Vec::len).sum::<usize>()
            + self.post.country.values().map(Vec::len).sum::<usize>()
            + self.post.region.values().map(Vec::len).sum::<usize>()
            + self.post.gpu_model.values().map(Vec::len).sum::<usize>()
            + self.post.token.values().map(Vec::len).sum::<usize>()
            + self.post.grid.values().map(Vec::len).sum::<usize>();
        n * per_row + postings * 4
    }

    fn compile<'q>(&self, q: &'q Query) -> Compiled<'q> {
        let mut impossible = false;
        let mut codes = |dict: &Dict, values: &[String]| -> Option<Vec<u32>> {
            if values.is_empty() {
                return None;
            }
            let found: Vec<u32> = values.iter().filter_map(|v| dict.get(v)).collect();
            if found.is_empty() {
                impossible = true;
            }
            Some(found)
        };
        let narrow =
            |v: Option<Vec<u32>>| v.map(|v| v.into_iter().map(|c| c as u16).collect::<Vec<u16>>());
        let providers = codes(&self.providers, &q.providers);
        let countries = narrow(codes(&self.countries, &q.countries));
        let regions = narrow(codes(&self.regions, &q.regions));
        let archs = narrow(codes(&self.archs, &q.architectures));
        let gpu_models = narrow(codes(&self.gpu_models, &q.gpu_models));
        let issuers = narrow(codes(&self.issuers, &q.certified_by));
        let tokens: Vec<String> = q
            .text
            .iter()
            .flat_map(|t| query::tokens(t).collect::<Vec<_>>())
            .collect();
        if tokens.iter().any(|t| !self.post.token.contains_key(t)) {
            impossible = true;
        }
        let bbox = q.near.map(|n| {
            let dlat = (n.radius_km / 111.0) as f32;
            let coslat = n.latitude.to_radians().cos().abs().max(0.01);
            let dlon = (n.radius_km / (111.0 * coslat)) as f32;
            (
                n.latitude as f32 - dlat,
                n.latitude as f32 + dlat,
                n.longitude as f32 - dlon,
                n.longitude as f32 + dlon,
            )
        });
        let sets = providers.is_some()
            || countries.is_some()
            || regions.is_some()
            || archs.is_some()
            || gpu_models.is_some()
            || issuers.is_some();
        let numeric = q.min_cpu_millicores.is_some()
            || q.min_memory_mib.is_some()
            || q.min_gpu_memory_mib.is_some()
            || q.min_gpu_permille.is_some()
            || q.min_bandwidth_mbps.is_some()
            || q.max_latency_ms.is_some()
            || q.min_green.is_some()
            || q.max_certified_latency_ms.is_some()
            || q.min_certified_uptime.is_some()
            || q.verified_only
            || q.max_price.is_some();
        let sphere = q.near.map(|n| {
            (
                unit_vector(n.latitude, n.longitude),
                ((n.radius_km / 6371.0).min(std::f64::consts::PI)).cos() as f32,
            )
        });
        let plain = !sets && !numeric && q.near.is_none() && tokens.is_empty();
        Compiled {
            q,
            sets,
            numeric,
            sphere,
            plain,
            class_mask: q.classes.iter().fold(0u8, |m, c| m | class_bit(*c)),
            providers,
            countries,
            regions,
            archs,
            gpu_models,
            issuers,
            tokens,
            price_class: query::price_class(q).map(class_index),
            bbox,
            impossible,
        }
    }

    /// The smallest candidate set among the filters that have a posting list or a grid.
    fn candidates<'a>(&'a self, c: &Compiled) -> Candidates<'a> {
        let mut best: Option<&'a [u32]> = None;
        let mut consider = |list: Option<&'a Vec<u32>>| {
            let list: &'a [u32] = list.map(Vec::as_slice).unwrap_or(&[]);
            if best.is_none_or(|b| list.len() < b.len()) {
                best = Some(list);
            }
        };
        for cl in &c.q.classes {
            consider(Some(&self.post.class[class_index(*cl)]));
        }
        if let Some([one]) = c.providers.as_deref() {
            consider(self.post.provider.get(one));
        }
        if let Some([one]) = c.countries.as_deref() {
            consider(self.post.country.get(one));
        }
        if let Some([one]) = c.regions.as_deref() {
            consider(self.post.region.get(one));
        }
        if let Some([one]) = c.gpu_models.as_deref() {
            consider(self.post.gpu_model.get(one));
        }
        for t in &c.tokens {
            consider(self.post.token.get(t));
        }
        let limit = best.map_or(self.cols.offer.len(), <[u32]>::len);
        if let Some((lat0, lat1, lon0, lon1)) = c.bbox {
            let (a, b) = (cell(lat0, lon0), cell(lat1, lon1));
            let cells = (i64::from(b.0 - a.0) + 1) * (i64::from(b.1 - a.1) + 1);
            if cells > 0 && (cells as usize) <= MAX_GRID_CELLS {
                let mut rows = Vec::new();
                'cells: for la in a.0..=b.0 {
                    for lo in a.1..=b.1 {
                        if let Some(list) = self.post.grid.get(&(la, lo)) {
                            rows.extend_from_slice(list);
                            if rows.len() >= limit {
                                break 'cells;
                            }
                        }
                    }
                }
                if rows.len() < limit {
                    return Candidates::Owned(rows);
                }
            }
        }
        match best {
            Some(list) => Candidates::List(list),
            None => Candidates::All(self.cols.offer.len()),
        }
    }

    fn price_of(&self, row: usize, c: &Compiled) -> f32 {
        let class = c.price_class.unwrap_or(self.cols.main_class[row] as usize);
        self.cols.price[row][class]
    }

    #[inline]
    fn matches(&self, row: usize, c: &Compiled) -> bool {
        let k = &self.cols;
        if k.classes[row] & (c.class_mask | DEAD) != c.class_mask {
            return false;
        }
        if c.plain {
            return true;
        }
        if c.sets && !self.matches_sets(row, c) {
            return false;
        }
        if c.numeric && !self.matches_numbers(row, c) {
            return false;
        }
        self.matches_place_and_text(row, c)
    }

    fn matches_sets(&self, row: usize, c: &Compiled) -> bool {
        let k = &self.cols;
        c.providers
            .as_ref()
            .is_none_or(|s| s.contains(&k.provider[row]))
            && c.countries
                .as_ref()
                .is_none_or(|s| s.contains(&k.country[row]))
            && c.regions
                .as_ref()
                .is_none_or(|s| s.contains(&k.region[row]))
            && c.archs.as_ref().is_none_or(|s| s.contains(&k.arch[row]))
            && c.gpu_models
                .as_ref()
                .is_none_or(|s| s.contains(&k.gpu_model[row]))
            && c.issuers
                .as_ref()
                .is_none_or(|s| s.contains(&k.cert_issuer[row]))
    }

    fn matches_numbers(&self, row: usize, c: &Compiled) -> bool {
        let k = &self.cols;
        let q = c.q;
        q.min_cpu_millicores
            .is_none_or(|v| u64::from(k.cpu[row]) >= v)
            && q.min_memory_mib
                .is_none_or(|v| u64::from(k.memory[row]) >= v)
            && q.min_gpu_memory_mib
                .is_none_or(|v| u64::from(k.gpu_memory[row]) >= v)
            && q.min_gpu_permille.is_none_or(|v| k.gpu_permille[row] >= v)
            && q.min_bandwidth_mbps
                .is_none_or(|v| u64::from(k.bandwidth[row]) >= v)
            && q.max_latency_ms
                .is_none_or(|v| f64::from(k.latency[row]) <= v)
            && q.min_green.is_none_or(|v| k.green[row] >= v)
            && q.max_certified_latency_ms
                .is_none_or(|v| f64::from(k.cert_latency[row]) <= v)
            && q.min_certified_uptime
                .is_none_or(|v| f64::from(k.cert_uptime[row]) >= v)
            && (!q.verified_only || k.cert_flags[row] & VERIFIED != 0)
            && q.max_price
                .is_none_or(|v| f64::from(self.price_of(row, c)) <= v)
    }

    fn matches_place_and_text(&self, row: usize, c: &Compiled) -> bool {
        let k = &self.cols;
        if let (Some(n), Some((lat0, lat1, lon0, lon1)), Some((centre, cos_r))) =
            (c.q.near, c.bbox, c.sphere)
        {
            let (lat, lon) = (k.lat[row], k.lon[row]);
            if lat < lat0
                || lat > lat1
                || ((lon < lon0 || lon > lon1) && lon0 > -180.0 && lon1 < 180.0)
            {
                return false;
            }
            // Clearly inside or outside by the dot product of unit vectors; the exact
            // great-circle distance only near the edge.
            const MARGIN: f32 = 5e-6;
            let v = k.xyz[row];
            let dot = centre[0] * v[0] + centre[1] * v[1] + centre[2] * v[2];
            let inside = if dot > cos_r + MARGIN {
                true
            } else if dot < cos_r - MARGIN {
                false
            } else {
                query::distance_km(n.latitude, n.longitude, f64::from(lat), f64::from(lon))
                    <= n.radius_km
            };
            if !inside {
                return false;
            }
        }
        for t in &c.tokens {
            match self.post.token.get(t) {
                Some(list) if list.binary_search(&(row as u32)).is_ok() => {}
                _ => return false,
            }
        }
        true
    }

    fn key(&self, row: usize, c: &Compiled) -> f64 {
        let k = &self.cols;
        match c.q.sort {
            SortKey::Price => f64::from(self.price_of(row, c)),
            SortKey::Latency => f64::from(k.cert_latency[row]),
            SortKey::Uptime => -f64::from(k.cert_uptime[row]),
            SortKey::Green => -f64::from(k.green[row]),
            SortKey::Reputation => -f64::from(
                self.reputation
                    .get(&k.offer[row].provider)
                    .copied()
                    .unwrap_or(0.5),
            ),
        }
    }

    /// Folds every matching row into per-thread states (several threads for large candidate
    /// sets), and returns the states.
    fn scan<S: Send>(
        &self,
        c: &Compiled,
        init: impl Fn() -> S + Sync,
        visit: impl Fn(&mut S, usize) + Sync,
    ) -> Vec<S> {
        if c.impossible {
            return vec![init()];
        }
        let candidates = self.candidates(c);
        let n = candidates.len();
        let threshold = if self.parallel_rows == 0 {
            PARALLEL_ROWS
        } else {
            self.parallel_rows
        };
        let threads = if n >= threshold {
            std::thread::available_parallelism()
                .map_or(1, |p| p.get())
                .min(8)
        } else {
            1
        };
        let run = |from: usize, to: usize| {
            let mut state = init();
            match &candidates {
                Candidates::All(_) => {
                    for row in from..to {
                        if self.matches(row, c) {
                            visit(&mut state, row);
                        }
                    }
                }
                Candidates::List(list) => {
                    for &row in &list[from..to] {
                        if self.matches(row as usize, c) {
                            visit(&mut state, row as usize);
                        }
                    }
                }
                Candidates::Owned(list) => {
                    for &row in &list[from..to] {
                        if self.matches(row as usize, c) {
                            visit(&mut state, row as usize);
                        }
                    }
                }
            }
            state
        };
        if threads == 1 {
            return vec![run(0, n)];
        }
        let chunk = n.div_ceil(threads);
        std::thread::scope(|scope| {
            let run = &run;
            let handles: Vec<_> = (1..threads)
                .map(|t| scope.spawn(move || run((t * chunk).min(n), ((t + 1) * chunk).min(n))))
                .collect();
            let mut states = vec![run(0, chunk.min(n))];
            states.extend(handles.into_iter().map(|h| h.join().expect("scan thread")));
            states
        })
    }

    /// One page of results in sort order, after the query's cursor.
    pub fn search(&self, q: &Query) -> Page {
        let c = self.compile(q);
        let limit = q.limit.clamp(1, query::MAX_LIMIT);
        let after = q.cursor.map(|cur| Ranked {
            key: cur.key,
            tiebreak: cur.tiebreak,
            row: 0,
        });
        let states = self.scan(
            &c,
            || (BinaryHeap::<Ranked>::with_capacity(limit + 1), 0usize),
            |(heap, total), row| {
                *total += 1;
                let key = self.key(row, &c);
                // Most rows lose to the page's worst on the key alone.
                if heap.len() == limit && heap.peek().is_some_and(|top| key > top.key) {
                    return;
                }
                let r = Ranked {
                    key,
                    tiebreak: self.cols.tiebreak[row],
                    row: row as u32,
                };
                if after.as_ref().is_some_and(|a| r <= *a) {
                    return;
                }
                if heap.len() < limit {
                    heap.push(r);
                } else if heap.peek().is_some_and(|top| r < *top) {
                    heap.pop();
                    heap.push(r);
                }
            },
        );
        let total = states.iter().map(|(_, t)| t).sum();
        let mut ranked: Vec<Ranked> = states.into_iter().flat_map(|(h, _)| h.into_vec()).collect();
        ranked.sort();
        ranked.truncate(limit);
        let full = ranked.len() == limit;
        let next = ranked.last().filter(|_| full).map(|r| Cursor {
            key: r.key,
            tiebreak: r.tiebreak,
        });
        let hits = ranked
            .into_iter()
            .map(|r| Hit {
                offer: self.cols.offer[r.row as usize].clone(),
                plan_index: self.cols.plan[r.row as usize] as usize,
                key: r.key,
            })
            .collect();
        Page { hits, total, next }
    }

    /// Counts per class, region, GPU model and price bucket over everything the query matches.
    pub fn facets(&self, q: &Query) -> Facets {
        let c = self.compile(q);
        struct Counts {
            total: usize,
            classes: [usize; 4],
            regions: Vec<usize>,
            gpus: Vec<usize>,
            buckets: [usize; PRICE_BUCKETS.len()],
        }
        let (nr, ng) = (self.regions.names.len(), self.gpu_models.names.len());
        let states = self.scan(
            &c,
            || Counts {
                total: 0,
                classes: [0; 4],
                regions: vec![0; nr],
                gpus: vec![0; ng],
                buckets: [0; PRICE_BUCKETS.len()],
            },
            |n, row| {
                let k = &self.cols;
                n.total += 1;
                let mask = k.classes[row];
                for (i, count) in n.classes.iter_mut().enumerate() {
                    *count += usize::from(mask >> i & 1);
                }
                n.regions[k.region[row] as usize] += 1;
                if k.gpu_model[row] != NONE16 {
                    n.gpus[k.gpu_model[row] as usize] += 1;
                }
                let p = f64::from(self.price_of(row, &c));
                let b = PRICE_BUCKETS
                    .iter()
                    .position(|ub| p <= *ub)
                    .unwrap_or(PRICE_BUCKETS.len() - 1);
                n.buckets[b] += 1;
            },
        );
        let mut total = 0;
        let mut classes = [0usize; 4];
        let mut regions = vec![0usize; nr];
        let mut gpus = vec![0usize; ng];
        let mut buckets = [0usize; PRICE_BUCKETS.len()];
        for s in states {
            total += s.total;
            for (a, b) in classes.iter_mut().zip(s.classes) {
                *a += b;
            }
            for (a, b) in regions.iter_mut().zip(s.regions) {
                *a += b;
            }
            for (a, b) in gpus.iter_mut().zip(s.gpus) {
                *a += b;
            }
            for (a, b) in buckets.iter_mut().zip(s.buckets) {
                *a += b;
            }
        }
        let named = |dict: &Dict, counts: Vec<usize>| {
            let mut v: Vec<FacetCount> = counts
                .into_iter()
                .enumerate()
                .filter(|(_, n)| *n > 0)
                .map(|(i, n)| FacetCount::new(dict.names[i].clone(), n))
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
            v
        };
        Facets {
            total,
            classes: ResourceClass::ALL
                .iter()
                .zip(classes)
                .filter(|(_, n)| *n > 0)
                .map(|(c, n)| FacetCount::new(c.as_str(), n))
                .collect(),
            regions: named(&self.regions, regions),
            gpu_models: named(&self.gpu_models, gpus),
            price_buckets: PRICE_BUCKETS
                .iter()
                .zip(buckets)
                .map(|(ub, n)| {
                    let bound = if ub.is_finite() {
                        format!("{ub}")
                    } else {
                        "inf".into()
                    };
                    FacetCount::new(bound, n)
                })
                .collect(),
        }
    }
}
