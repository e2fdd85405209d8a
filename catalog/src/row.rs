//! The flat, queryable view of one plan: what the in-memory index holds in its columns and what
//! the `plans` table holds in SQL, computed once here so both answer the same question the same way.

use crate::model::{Offer, ResourceClass};
use crate::query;

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub plan_index: usize,
    pub plan_id: String,
    /// Bit i set when the offer has class i (compute, gpu, network, data).
    pub classes: u8,
    pub main_class: ResourceClass,
    pub architecture: Option<String>,
    pub gpu_model: Option<String>,
    pub cpu_millicores: u32,
    pub memory_mib: u32,
    pub gpu_memory_mib: u32,
    pub gpu_permille: u32,
    pub bandwidth_mbps: u32,
    /// Network latency; infinite without a network part.
    pub latency_ms: f32,
    /// Normalised price per class.
    pub price: [f32; 4],
    pub latitude: f32,
    pub longitude: f32,
    pub green: u8,
    pub tiebreak: u64,
}

fn clamp32(v: u64) -> u32 {
    v.min(u64::from(u32::MAX)) as u32
}

/// The words text search matches: name, description, tags, dataset name and descriptor.
pub fn words(offer: &Offer) -> Vec<String> {
    let mut w: Vec<String> = query::tokens(&offer.name)
        .chain(query::tokens(&offer.description))
        .collect();
    for t in &offer.tags {
        w.extend(query::tokens(t));
    }
    if let Some(d) = &offer.resources.data {
        w.extend(query::tokens(&d.dataset));
        w.extend(query::tokens(&d.descriptor));
    }
    w.sort();
    w.dedup();
    w
}

pub fn plan_rows(offer: &Offer) -> Vec<PlanRow> {
    let classes = offer.classes();
    let mask = classes.iter().fold(0u8, |m, c| m | (1 << (*c as u8)));
    let main_class = classes.first().copied().unwrap_or(ResourceClass::Compute);
    let r = &offer.resources;
    offer
        .plans
        .iter()
        .enumerate()
        .map(|(i, plan)| PlanRow {
            plan_index: i,
            plan_id: plan.id.clone(),
            classes: mask,
            main_class,
            architecture: r.compute.as_ref().map(|c| c.architecture.clone()),
            gpu_model: r.gpu.as_ref().map(|g| g.model.clone()),
            cpu_millicores: clamp32(plan.unit.cpu_millicores),
            memory_mib: clamp32(plan.unit.memory_mib),
            gpu_memory_mib: r.gpu.as_ref().map_or(0, |g| clamp32(g.memory_mib)),
            gpu_permille: plan.unit.gpu_permille,
            bandwidth_mbps: clamp32(plan.unit.bandwidth_mbps),
            latency_ms: r
                .network
                .as_ref()
                .map_or(f32::INFINITY, |n| n.latency_ms as f32),
            price: ResourceClass::ALL.map(|c| plan.normalized_price(c) as f32),
            latitude: offer.location.latitude as f32,
            longitude: offer.location.longitude as f32,
            green: offer.green_energy_percent,
            tiebreak: query::tiebreak(&offer.id, &plan.id),
        })
        .collect()
}

/// The tie-break as a signed integer with the same order (SQL has no unsigned 64-bit type).
pub fn tiebreak_sql(t: u64) -> i64 {
    (t ^ (1 << 63)) as i64
}

pub fn tiebreak_from_sql(t: i64) -> u64 {
    (t as u64) ^ (1 << 63)
}
