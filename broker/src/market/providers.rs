//! Provider configurations: the content goes into the content store, its CID is registered on
//! chain with the provider account's `SetConfig` signature, and the broker records the version.

use alloy::primitives::U256;
use api::events::{ConfigChanged, EventBody};
use api::providers::{ConfigRegistered, ConfigRequest, ProviderConfigView};
use api::{ContentId, Did, Principal, TxHash};
use catalog::provider_config::{ProviderConfig, MAX_CONFIG_BYTES};

use super::{Market, MarketError};
use crate::events::{Audience, Pending};
use crate::store::{now, Decode, Store};

#[derive(sqlx::FromRow)]
struct ConfigRow {
    version: i64,
    cid: String,
}

/// The provider's newest configuration: (version, CID).
pub async fn current_config(
    store: &Store,
    did: &Did,
) -> Result<Option<(u64, ContentId)>, MarketError> {
    let row: Option<ConfigRow> = sqlx::query_as(
        "SELECT version, cid FROM provider_configs WHERE did = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(did.to_string())
    .fetch_optional(store.pool())
    .await?;
    let d = Decode {
        table: "provider_configs",
        key: did.as_str(),
    };
    Ok(row
        .map(|r| {
            Ok::<_, crate::store::Corrupt>((d.u64("version", r.version)?, d.parse("cid", &r.cid)?))
        })
        .transpose()?)
}

impl Market {
    /// Registers a new configuration of the caller (a provider).
    pub async fn set_config(
        &self,
        who: &Principal,
        req: &ConfigRequest,
    ) -> Result<ConfigRegistered, MarketError> {
        let account = self.linked_account(&who.did).await?;
        catalog::provider_config::parse(req.config.as_bytes())
            .map_err(|e| MarketError::BadRequest(e.to_string()))?;
        let actual = content::unixfs::cid_of(req.config.as_bytes());
        if *req.cid.cid() != actual {
            return Err(MarketError::BadRequest(format!(
                "the configuration's content has CID {actual}, not {}; it was changed after signing or the CID was computed another way",
                req.cid
            )));
        }
        if req.deadline < now() {
            return Err(MarketError::BadRequest(
                "the deadline has passed; sign again".into(),
            ));
        }
        let stored = self.content.put(req.config.as_bytes()).await?;
        if stored != actual {
            return Err(content::ContentError::Mismatch {
                expected: actual,
                got: stored,
            }
            .into());
        }
        let cid = ContentId::from(actual);
        let (tx, version) = self
            .ledger
            .set_config(
                account,
                &cid.to_string(),
                U256::from(req.deadline),
                req.signature.bytes().clone(),
            )
            .await
            .map_err(|e| {
                if e.is_revert() {
                    MarketError::Refused {
                        title: "configuration refused",
                        detail: format!(
                            "the registry refused it (wrong signature, nonce or account): {e}"
                        ),
                    }
                } else {
                    e.into()
                }
            })?;
        let now = now();
        let mut db = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO provider_configs (did, version, cid, tx_hash, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(who.did.to_string())
        .bind(version as i64)
        .bind(cid.to_string())
        .bind(tx.to_string())
        .bind(now as i64)
        .execute(&mut *db)
        .await?;
        let event = Pending {
            subject: who.did.to_string(),
            audience: Audience::Everyone,
            body: EventBody::ProviderConfigChanged(ConfigChanged {
                provider: who.did.clone(),
                version,
                cid: cid.clone(),
            }),
        };
        self.commit(db, vec![event], now).await?;
        Ok(ConfigRegistered {
            provider: who.did.clone(),
            version,
            cid,
            tx_hash: TxHash(tx),
        })
    }

    /// A provider's current configuration, read back from the content store (checked by its CID).
    pub async fn config(&self, did: &Did) -> Result<ProviderConfigView, MarketError> {
        let (version, cid) = current_config(&self.store, did).await?.ok_or_else(|| {
            MarketError::NotFound(format!("{did} has registered no configuration"))
        })?;
        let bytes = self.content.get(cid.cid(), MAX_CONFIG_BYTES).await?;
        let config = String::from_utf8(bytes).map_err(|e| {
            crate::store::Corrupt::new("content", "provider configuration", &cid, e)
        })?;
        Ok(ProviderConfigView {
            provider: did.clone(),
            version,
            cid,
            config,
        })
    }

    /// The provider configuration stored under `cid`, parsed (a contract's, for its credentials).
    pub async fn config_at(&self, cid: &ContentId) -> Result<ProviderConfig, MarketError> {
        let bytes = self.content.get(cid.cid(), MAX_CONFIG_BYTES).await?;
        catalog::provider_config::parse(&bytes).map_err(|e| {
            crate::store::Corrupt::new("content", "provider configuration", cid, e).into()
        })
    }
}
