//! The catalog's use cases: search and facets (off the async workers: a scan of a million plans
//! takes milliseconds of CPU), one offer and its history, publishing and withdrawing (the offer's
//! provider only, each change announced with its event in the same transaction).

use api::events::{EventBody, OfferChanged, OfferWithdrawn};
use api::offers::{
    CanonicalOffer, OfferDocument, OfferStatus, Published, SearchItem, SearchPage, WithdrawnOffer,
};
use api::{OfferId, Principal};
use catalog::model::Offer;
use catalog::query::Facets;
use catalog::store::{CatalogStore, StoreError as CatalogError};

use super::{Market, MarketError};
use crate::events::{Audience, Pending};
use crate::store::{now, Corrupt};

/// The reputation of a provider with no record yet (the index's default too).
pub const NEUTRAL_REPUTATION: f32 = 0.5;

/// The catalog refused a write: not the caller's offer, no such offer, a version conflict.
fn refusal(e: CatalogError) -> MarketError {
    match e {
        CatalogError::NotOwner(_) => MarketError::Forbidden(e.to_string()),
        CatalogError::NotFound(_) => MarketError::NotFound(e.to_string()),
        CatalogError::VersionConflict { .. }
        | CatalogError::NotFirstVersion { .. }
        | CatalogError::Withdrawn(_) => MarketError::Conflict(e.to_string()),
        other => MarketError::Catalog(other),
    }
}

impl Market {
    /// Runs `f` on the index on a blocking thread.
    pub(super) async fn on_index<T: Send + 'static>(
        &self,
        f: impl FnOnce(&catalog::Index) -> T + Send + 'static,
    ) -> T {
        let index = self.index.clone();
        let run = move || f(&index.read().unwrap_or_else(|e| e.into_inner()));
        match tokio::task::spawn_blocking(run).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// One page of plans matching `q`.
    pub async fn search(&self, q: catalog::Query) -> Result<SearchPage, MarketError> {
        self.on_index(move |index| {
            let page = index.search(&q);
            let items = page
                .hits
                .iter()
                .map(|h| {
                    let provider = &h.offer.provider;
                    let cert = index.certification(provider);
                    let reputation = index.reputation(provider).unwrap_or(NEUTRAL_REPUTATION);
                    SearchItem::new(&h.offer, h.plan_index, h.key, cert.as_deref(), reputation)
                        .map_err(|e| Corrupt::new("offers", "id", &h.offer.id, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, Corrupt>(SearchPage {
                items,
                total: page.total,
                next_cursor: page.next.map(|c| c.encode()),
            })
        })
        .await
        .map_err(MarketError::from)
    }

    pub async fn facets(&self, q: catalog::Query) -> Facets {
        self.on_index(move |index| index.facets(&q)).await
    }

    /// An offer, active or withdrawn.
    pub async fn offer(&self, id: &OfferId) -> Result<OfferDocument, MarketError> {
        let stored = self
            .store
            .catalog()
            .get(id.as_str())
            .await?
            .ok_or_else(|| MarketError::NotFound(format!("no offer {id}")))?;
        Ok(OfferDocument {
            status: if stored.withdrawn_at.is_some() {
                OfferStatus::Withdrawn
            } else {
                OfferStatus::Active
            },
            withdrawn_at: stored.withdrawn_at,
            offer: stored.offer,
        })
    }

    /// Every version of an offer, oldest first.
    pub async fn offer_history(&self, id: &OfferId) -> Result<Vec<Offer>, MarketError> {
        let versions = self.store.catalog().history(id.as_str()).await?;
        if versions.is_empty() {
            return Err(MarketError::NotFound(format!("no offer {id}")));
        }
        Ok(versions)
    }

    /// Publishes a new offer or a new version of one, signed by its provider, who must be the
    /// caller. Returns whether it was the first version.
    /// The canonical form of `body`, an unsigned offer of the caller's, once every field is valid.
    pub fn canonical_offer(
        &self,
        who: &Principal,
        body: &[u8],
    ) -> Result<CanonicalOffer, MarketError> {
        let offer = catalog::validate::parse_offer(body, false)
            .map_err(|e| MarketError::BadRequest(e.to_string()))?;
        if offer.provider != who.did.as_str() {
            return Err(MarketError::Forbidden(
                "an offer names its provider; you can publish only your own offers".into(),
            ));
        }
        let canonical = String::from_utf8(offer.canonical_bytes())
            .map_err(|_| MarketError::BadRequest("the offer is not UTF-8".into()))?;
        Ok(CanonicalOffer { canonical })
    }

    pub async fn publish(
        &self,
        who: &Principal,
        body: &[u8],
    ) -> Result<(bool, Published), MarketError> {
        let offer = catalog::validate::parse_offer(body, true)
            .map_err(|e| MarketError::BadRequest(e.to_string()))?;
        if offer.provider != who.did.as_str() {
            return Err(MarketError::Forbidden(
                "an offer names its provider; you can publish only your own offers".into(),
            ));
        }
        let id: OfferId = offer
            .id
            .parse()
            .map_err(|e: api::IdError| MarketError::BadRequest(e.to_string()))?;
        let now = now();
        let mut tx = self.store.catalog().begin_write().await?;
        CatalogStore::publish_in(&mut tx, &offer, now)
            .await
            .map_err(refusal)?;
        let changed = OfferChanged {
            offer: id.clone(),
            version: offer.version,
            provider: who.did.clone(),
        };
        let first = offer.version == 1;
        let event = Pending {
            subject: id.to_string(),
            audience: Audience::Everyone,
            body: if first {
                EventBody::OfferPublished(changed)
            } else {
                EventBody::OfferUpdated(changed)
            },
        };
        self.commit(tx, vec![event], now).await?;
        Ok((
            first,
            Published {
                id,
                version: offer.version,
            },
        ))
    }

    /// Withdraws an offer of the caller's.
    pub async fn withdraw(
        &self,
        who: &Principal,
        id: &OfferId,
    ) -> Result<WithdrawnOffer, MarketError> {
        let now = now();
        let mut tx = self.store.catalog().begin_write().await?;
        let seq = CatalogStore::withdraw_in(&mut tx, id.as_str(), who.did.as_str(), now)
            .await
            .map_err(refusal)?;
        let event = Pending {
            subject: id.to_string(),
            audience: Audience::Everyone,
            body: EventBody::OfferWithdrawn(OfferWithdrawn {
                offer: id.clone(),
                provider: who.did.clone(),
            }),
        };
        self.commit(tx, vec![event], now).await?;
        Ok(WithdrawnOffer {
            id: id.clone(),
            change: seq,
        })
    }
}
