//! Keeps an in-memory index current with the database: rebuilt at start, then every change in the
//! change log applied in order. Each broker process runs one, so processes sharing a PostgreSQL
//! database all see every write.

use std::sync::{Arc, RwLock};

use crate::index::Index;
use crate::store::{CatalogStore, StoreError};

pub struct IndexFollower {
    store: CatalogStore,
    index: Arc<RwLock<Index>>,
    seq: u64,
}

impl IndexFollower {
    /// Builds the index from the database's active offers.
    pub async fn start(store: CatalogStore) -> Result<Self, StoreError> {
        let (offers, seq) = store.active_offers().await?;
        let index = Arc::new(RwLock::new(Index::from_offers(offers)));
        Ok(Self { store, index, seq })
    }

    pub fn index(&self) -> Arc<RwLock<Index>> {
        self.index.clone()
    }

    /// The last change applied.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Applies every change after the last one applied; returns how many.
    pub async fn catch_up(&mut self) -> Result<usize, StoreError> {
        let mut applied = 0;
        loop {
            let changes = self.store.changes_since(self.seq, 500).await?;
            if changes.is_empty() {
                return Ok(applied);
            }
            // Several changes to one offer in a batch need its current state only once: the
            // state, not each change, goes into the index.
            let last_seq = changes.last().map_or(self.seq, |c| c.seq);
            let mut ids: Vec<&str> = changes.iter().map(|c| c.offer_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                let current = self.store.get(id).await?;
                let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
                match current {
                    Some(s) if s.withdrawn_at.is_none() => index.upsert(s.offer),
                    _ => {
                        index.remove(id);
                    }
                }
            }
            applied += changes.len();
            self.seq = last_seq;
        }
    }
}
