//! Peering credentials of active contracts: minted when a contract becomes active, sealed to the
//! consumer, announced to the provider's agent by hash (`credential.issued`), rotated on the
//! consumer's request (the old one works for a grace period), revoked when the contract closes or
//! an operator says so. The broker never stores a secret in the clear.

use api::credentials::{CredentialInfo, Revoked};
use api::events::{CredentialIssued, CredentialRevoked, CredentialRotated, EventBody};
use api::{ContractId, ContractState, CredentialHash, Ed25519Signature};
use catalog::provider_config::{ConnectionKind, ProviderConfig};
use peering::envelope::{Credential, CredentialKind, ENVELOPE_VERSION};
use rand::RngCore;

use super::records::{self, ContractRecord};
use super::{escrow, Market, MarketError};
use crate::events::Pending;
use crate::store::{now, Corrupt, Decode, Store};

/// How long credentials live and how long a replaced one keeps working.
#[derive(Debug, Clone, Copy)]
pub struct CredentialPolicy {
    pub ttl_secs: u64,
    pub grace_secs: u64,
}

impl Default for CredentialPolicy {
    fn default() -> Self {
        Self {
            ttl_secs: 3600,
            grace_secs: 60,
        }
    }
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    hash: String,
    contract_id: String,
    version: i64,
    consumer: String,
    kind: String,
    not_before: i64,
    expires_at: i64,
    renew_before: i64,
    revoked_at: Option<i64>,
    sealed: String,
}

fn kind_of(s: &str) -> Option<ConnectionKind> {
    match s {
        "generic" => Some(ConnectionKind::Generic),
        "liqo" => Some(ConnectionKind::Liqo),
        "wireguard" => Some(ConnectionKind::Wireguard),
        _ => None,
    }
}

fn kind_name(k: &CredentialKind) -> &'static str {
    match k {
        CredentialKind::Generic => "generic",
        CredentialKind::Liqo { .. } => "liqo",
        CredentialKind::Wireguard { .. } => "wireguard",
    }
}

impl CredentialRow {
    fn decode(self) -> Result<CredentialInfo, Corrupt> {
        let d = Decode {
            table: "credentials",
            key: &self.hash,
        };
        Ok(CredentialInfo {
            hash: d.parse("hash", &self.hash)?,
            contract_id: d.parse("contract_id", &self.contract_id)?,
            version: d.u64("version", self.version)?,
            consumer: d.parse("consumer", &self.consumer)?,
            kind: d.named("kind", &self.kind, kind_of)?,
            not_before: d.u64("not_before", self.not_before)?,
            expires_at: d.u64("expires_at", self.expires_at)?,
            renew_before: d.u64("renew_before", self.renew_before)?,
            revoked_at: d.opt_u64("revoked_at", self.revoked_at)?,
            sealed: d.json("sealed", &self.sealed)?,
        })
    }
}

const COLUMNS: &str =
    "hash, contract_id, version, consumer, kind, not_before, expires_at, renew_before, revoked_at, sealed";

fn random_hex<const N: usize>() -> String {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    identity::hex_encode(&b)
}

/// The contract's host number in its provider's tunnel network 10.77.0.0/16 (2 to 65534; .1 is
/// the provider's), allocated once per contract and kept across renewals.
pub async fn tunnel_host(
    store: &Store,
    provider: &str,
    contract: ContractId,
) -> Result<u16, MarketError> {
    let key = contract.to_string();
    // One allocation at a time (SQLite: an immediate transaction; PostgreSQL: a lock).
    let mut tx = store.begin().await?;
    if store.backend() == catalog::store::Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(727275)")
            .execute(&mut *tx)
            .await?;
    }
    let found: Option<(i64,)> = sqlx::query_as(
        "SELECT host FROM tunnel_addresses WHERE provider = $1 AND contract_id = $2",
    )
    .bind(provider)
    .bind(&key)
    .fetch_optional(&mut *tx)
    .await?;
    let host = match found {
        Some((host,)) => host,
        None => {
            let next: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(host), 1) + 1 FROM tunnel_addresses WHERE provider = $1",
            )
            .bind(provider)
            .fetch_one(&mut *tx)
            .await?;
            if next > 65534 {
                return Err(MarketError::Conflict(format!(
                    "provider {provider} has no tunnel address left for another contract"
                )));
            }
            sqlx::query(
                "INSERT INTO tunnel_addresses (provider, host, contract_id) VALUES ($1, $2, $3)",
            )
            .bind(provider)
            .bind(next)
            .bind(&key)
            .execute(&mut *tx)
            .await?;
            next
        }
    };
    tx.commit().await?;
    u16::try_from(host).map_err(|e| Corrupt::new("tunnel_addresses", "host", &key, e).into())
}

/// The envelope's kind from the provider's configuration (generic when it has none);
/// `tunnel_host` places a WireGuard consumer in the provider's tunnel network.
/// What the envelope carries for the provider's connection kind. WireGuard: the consumer's own
/// public key from the signed document (the broker never holds a consumer's private key), the
/// tunnel address allocated for the contract, the provider's peer key.
fn kind_for(
    config: Option<&ProviderConfig>,
    provider: &str,
    secret: &str,
    tunnel_host: u16,
    consumer_wireguard_key: Option<&api::WireguardKey>,
) -> Result<CredentialKind, String> {
    let Some(config) = config else {
        return Ok(CredentialKind::Generic);
    };
    let endpoint = config
        .endpoints
        .first()
        .map(|e| e.url.clone())
        .unwrap_or_default();
    Ok(match config.connection.kind {
        ConnectionKind::Liqo => CredentialKind::Liqo {
            cluster_id: if config.connection.node_id.is_empty() {
                provider.to_string()
            } else {
                config.connection.node_id.clone()
            },
            cluster_name: config.name.clone(),
            token: secret.to_string(),
            endpoint,
        },
        ConnectionKind::Wireguard => {
            let public = consumer_wireguard_key.ok_or(
                "the provider connects over WireGuard, but the contract document names no WireGuard key of the consumer",
            )?;
            let b = |x: &[u8]| identity::hex_encode(x);
            let peer = identity::x25519_public(provider).unwrap_or_default();
            let host = endpoint
                .split("://")
                .nth(1)
                .unwrap_or(&endpoint)
                .trim_end_matches('/')
                .to_string();
            CredentialKind::Wireguard {
                public_key: public.to_string(),
                address: format!("10.77.{}.{}/32", tunnel_host >> 8, tunnel_host & 0xff),
                peer_public_key: b(&peer),
                peer_endpoint: host,
                allowed_ips: "10.77.0.0/16".into(),
            }
        }
        ConnectionKind::Generic => CredentialKind::Generic,
    })
}

/// Mints a credential for an active contract, seals it to the consumer, announces its hash.
async fn issue(
    market: &Market,
    contract: &ContractRecord,
    now: u64,
) -> Result<CredentialInfo, MarketError> {
    let policy = market.policy.credentials;
    // Everything the envelope says comes from the document both parties signed: its provider
    // configuration (not a later one) and the consumer's WireGuard key.
    let document = records::get_reservation(&market.store, contract.reservation_id)
        .await?
        .map(|r| r.document)
        .ok_or_else(|| {
            Corrupt::new("contracts", "reservation_id", contract.id, "no reservation")
        })?;
    let document = api::document::ContractDocument::parse(document.as_bytes())
        .map_err(|e| Corrupt::new("reservations", "document", contract.id, e))?;
    let config = match &document.provider_config_cid {
        Some(cid) => Some(market.config_at(cid).await?),
        None => None,
    };
    let config = config.as_ref();
    let secret = random_hex::<32>();
    let host = match config.map(|c| c.connection.kind) {
        Some(ConnectionKind::Wireguard) => {
            tunnel_host(&market.store, contract.provider.as_str(), contract.id).await?
        }
        _ => 0,
    };
    let kind = kind_for(
        config,
        contract.provider.as_str(),
        &secret,
        host,
        document.consumer_wireguard_key.as_ref(),
    )
    .map_err(MarketError::Conflict)?;
    let credential = Credential {
        version: ENVELOPE_VERSION,
        kind,
        contract_id: contract.id.to_string(),
        provider_node_id: contract.provider.to_string(),
        endpoints: config
            .map(|c| c.endpoints.iter().map(|e| e.url.clone()).collect())
            .unwrap_or_default(),
        consumer_key: contract.consumer.to_string(),
        secret,
        not_before: now,
        expires_at: now + policy.ttl_secs,
        renew_before: now + policy.ttl_secs - policy.ttl_secs / 5,
    };
    let sealed = peering::seal(&credential, contract.consumer.as_str(), &market.identity)
        .map_err(|e| Corrupt::new("contracts", "consumer", contract.id, e))?;
    let hash: CredentialHash = credential
        .hash()
        .parse()
        .map_err(|e| Corrupt::new("credentials", "hash", contract.id, e))?;
    let mut tx = market.store.begin().await?;
    let version: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM credentials WHERE contract_id = $1",
    )
    .bind(contract.id.to_string())
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO credentials ({COLUMNS}, provider, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11)"
    ))
    .bind(hash.to_string())
    .bind(contract.id.to_string())
    .bind(version)
    .bind(contract.consumer.to_string())
    .bind(kind_name(&credential.kind))
    .bind(credential.not_before as i64)
    .bind(credential.expires_at as i64)
    .bind(credential.renew_before as i64)
    .bind(serde_json::to_string(&sealed).expect("sealed credentials serialise"))
    .bind(contract.provider.to_string())
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    let event = contract.parties_event(EventBody::CredentialIssued(CredentialIssued {
        contract: contract.id,
        hash: hash.clone(),
        version: version.max(0) as u64,
        consumer: contract.consumer.clone(),
        not_before: credential.not_before,
        expires_at: credential.expires_at,
        broker_signature: Ed25519Signature::sign(
            &market.identity,
            identity::Domain::Admission,
            CredentialIssued::admission_text(
                contract.id,
                &hash,
                &contract.consumer,
                credential.not_before,
                credential.expires_at,
            )
            .as_bytes(),
        ),
    }));
    market.commit(tx, vec![event], now).await?;
    get(&market.store, &hash)
        .await?
        .ok_or(MarketError::NoContract(contract.id))
}

pub async fn get(
    store: &Store,
    hash: &CredentialHash,
) -> Result<Option<CredentialInfo>, MarketError> {
    let row: Option<CredentialRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE hash = $1"
    ))
    .bind(hash.to_string())
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(CredentialRow::decode).transpose()?)
}

/// A contract's credentials that still work at `now`, newest first.
pub async fn live(
    store: &Store,
    contract: ContractId,
    now: u64,
) -> Result<Vec<CredentialInfo>, MarketError> {
    let rows: Vec<CredentialRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE contract_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY version DESC"
    ))
    .bind(contract.to_string())
    .bind(now as i64)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(CredentialRow::decode)
        .collect::<Result<_, _>>()?)
}

/// Active contracts whose credentials are all gone (never issued, expired, or a crash in
/// between), except those suspended for their escrow.
pub async fn missing(store: &Store, now: u64) -> Result<Vec<ContractId>, MarketError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT c.id FROM contracts c WHERE c.state = 'active' AND NOT EXISTS \
         (SELECT 1 FROM credentials k WHERE k.contract_id = c.id AND k.revoked_at IS NULL AND k.expires_at > $1) \
         AND NOT EXISTS (SELECT 1 FROM contract_escrow e WHERE e.contract_id = c.id AND e.suspended_at IS NOT NULL) \
         AND NOT EXISTS (SELECT 1 FROM credential_holds h WHERE h.contract_id = c.id)",
    )
    .bind(now as i64)
    .fetch_all(store.pool())
    .await?;
    let d = Decode {
        table: "contracts",
        key: "(active)",
    };
    Ok(rows
        .iter()
        .map(|(id,)| d.parse("id", id))
        .collect::<Result<_, _>>()?)
}

/// When the next live credential of an active contract expires (the contract then needs a new
/// one).
pub async fn next_expiry(store: &Store) -> Result<Option<u64>, MarketError> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(k.expires_at) FROM credentials k JOIN contracts c ON c.id = k.contract_id \
         WHERE c.state = 'active' AND k.revoked_at IS NULL",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(Decode {
        table: "credentials",
        key: "next expiry",
    }
    .opt_u64("expires_at", at)?)
}

/// After a renewal: the older live credentials work until `now + grace`.
async fn retire_older(
    market: &Market,
    contract: &ContractRecord,
    newest: &CredentialHash,
    now: u64,
) -> Result<(), MarketError> {
    let until = now + market.policy.credentials.grace_secs;
    let mut tx = market.store.begin().await?;
    let older: Vec<(String,)> = sqlx::query_as(
        "SELECT hash FROM credentials WHERE contract_id = $1 AND hash <> $2 AND revoked_at IS NULL AND expires_at > $3",
    )
    .bind(contract.id.to_string())
    .bind(newest.to_string())
    .bind(until as i64)
    .fetch_all(&mut *tx)
    .await?;
    if older.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE credentials SET expires_at = $1 WHERE contract_id = $2 AND hash <> $3 AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(until as i64)
    .bind(contract.id.to_string())
    .bind(newest.to_string())
    .execute(&mut *tx)
    .await?;
    let d = Decode {
        table: "credentials",
        key: "(older)",
    };
    let replaced = older
        .iter()
        .map(|(h,)| d.parse("hash", h))
        .collect::<Result<Vec<_>, _>>()?;
    let event = contract.parties_event(EventBody::CredentialRotated(CredentialRotated {
        contract: contract.id,
        replaced,
        until,
        by: newest.clone(),
    }));
    market.commit(tx, vec![event], now).await
}

/// Revokes every live credential of a contract in `tx` (the caller's change, e.g. the close);
/// returns the event announcing it, if there was anything to revoke.
pub async fn revoke_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    contract: &ContractRecord,
    why: &str,
    now: u64,
) -> Result<Option<Pending>, MarketError> {
    let hashes: Vec<(String,)> = sqlx::query_as(
        "SELECT hash FROM credentials WHERE contract_id = $1 AND revoked_at IS NULL",
    )
    .bind(contract.id.to_string())
    .fetch_all(&mut **tx)
    .await?;
    if hashes.is_empty() {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE credentials SET revoked_at = $1 WHERE contract_id = $2 AND revoked_at IS NULL",
    )
    .bind(now as i64)
    .bind(contract.id.to_string())
    .execute(&mut **tx)
    .await?;
    let d = Decode {
        table: "credentials",
        key: "(revoked)",
    };
    let revoked = hashes
        .iter()
        .map(|(h,)| d.parse("hash", h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(contract.parties_event(EventBody::CredentialRevoked(
        CredentialRevoked {
            contract: contract.id,
            revoked,
            reason: why.to_string(),
        },
    ))))
}

/// Whether an operator holds the contract's credentials.
pub async fn held(store: &Store, id: ContractId) -> Result<bool, MarketError> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT held_at FROM credential_holds WHERE contract_id = $1")
            .bind(id.to_string())
            .fetch_optional(store.pool())
            .await?;
    Ok(row.is_some())
}

fn held_error(id: ContractId) -> MarketError {
    MarketError::Conflict(format!(
        "an operator revoked the credentials of contract {id} and holds them; none is issued until an operator releases them"
    ))
}

impl Market {
    /// Mints a credential for an active contract that has none that works.
    pub async fn ensure_credential(&self, id: ContractId) -> Result<(), MarketError> {
        let now = now();
        if !live(&self.store, id, now).await?.is_empty() || held(&self.store, id).await? {
            return Ok(());
        }
        let Some(c) = records::get_contract(&self.store, id).await? else {
            return Ok(());
        };
        if c.state != ContractState::Active || escrow::is_suspended(&self.store, id).await? {
            return Ok(());
        }
        issue(self, &c, now).await?;
        Ok(())
    }

    /// The contract's working credentials, sealed to its consumer.
    pub async fn credentials(
        &self,
        c: &ContractRecord,
    ) -> Result<Vec<CredentialInfo>, MarketError> {
        if held(&self.store, c.id).await? {
            return Err(held_error(c.id));
        }
        if c.state == ContractState::Active {
            // Issued at activation; this covers a broker that stopped in between.
            self.ensure_credential(c.id).await?;
        }
        live(&self.store, c.id, now()).await
    }

    /// A new credential; the older ones keep working for the grace period.
    pub async fn renew_credential(
        &self,
        c: &ContractRecord,
    ) -> Result<CredentialInfo, MarketError> {
        if c.state != ContractState::Active {
            return Err(MarketError::WrongState {
                state: c.state.to_string(),
                needed: "active",
            });
        }
        if held(&self.store, c.id).await? {
            return Err(held_error(c.id));
        }
        let now = now();
        let fresh = issue(self, c, now).await?;
        retire_older(self, c, &fresh.hash, now).await?;
        Ok(fresh)
    }

    /// An operator's revocation (the agent refuses the credentials within seconds).
    pub async fn revoke_credentials(
        &self,
        c: &ContractRecord,
        why: &str,
    ) -> Result<Revoked, MarketError> {
        let now = now();
        let mut tx = self.store.begin().await?;
        // Held until an operator releases it: nothing re-issues a credential meanwhile.
        sqlx::query(
            "INSERT INTO credential_holds (contract_id, held_at, reason) VALUES ($1, $2, $3) \
             ON CONFLICT (contract_id) DO NOTHING",
        )
        .bind(c.id.to_string())
        .bind(now as i64)
        .bind(why)
        .execute(&mut *tx)
        .await?;
        let event = revoke_in(&mut tx, c, why, now).await?;
        let n = match &event {
            Some(Pending {
                body: EventBody::CredentialRevoked(r),
                ..
            }) => r.revoked.len() as u64,
            _ => 0,
        };
        self.commit(tx, event.into_iter().collect(), now).await?;
        Ok(Revoked {
            contract: c.id,
            revoked: n,
        })
    }
}

impl Market {
    /// An operator lifts the hold of a revocation; an active contract gets a new credential.
    pub async fn release_credentials(&self, c: &ContractRecord) -> Result<(), MarketError> {
        sqlx::query("DELETE FROM credential_holds WHERE contract_id = $1")
            .bind(c.id.to_string())
            .execute(self.store.pool())
            .await?;
        self.ensure_credential(c.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: &str) -> ProviderConfig {
        let text = format!(
            "name: edge-9\nendpoints:\n  - name: agent\n    url: tcp://10.0.0.9:7443\nconnection:\n  kind: {kind}\n  nodeId: node-9\n"
        );
        catalog::provider_config::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn each_connection_kind_gets_its_own_envelope() {
        let provider = identity::did_of(&identity::generate().verifying_key());
        let provider = provider.as_str();
        let secret = random_hex::<32>();
        assert_eq!(
            kind_for(None, provider, &secret, 0, None).unwrap(),
            CredentialKind::Generic
        );
        assert_eq!(
            kind_for(Some(&config("generic")), provider, &secret, 0, None).unwrap(),
            CredentialKind::Generic
        );
        match kind_for(Some(&config("liqo")), provider, &secret, 0, None).unwrap() {
            CredentialKind::Liqo {
                cluster_id,
                cluster_name,
                token,
                endpoint,
            } => {
                assert_eq!(
                    (cluster_id.as_str(), cluster_name.as_str()),
                    ("node-9", "edge-9")
                );
                assert_eq!(
                    (token.as_str(), endpoint.as_str()),
                    (secret.as_str(), "tcp://10.0.0.9:7443")
                );
            }
            other => panic!("{other:?}"),
        }
        // The consumer's own key, from the signed document; without one, no envelope.
        assert!(kind_for(Some(&config("wireguard")), provider, &secret, 258, None).is_err());
        let consumer_secret = [7u8; 32];
        let consumer_key = api::WireguardKey::of(&consumer_secret);
        match kind_for(
            Some(&config("wireguard")),
            provider,
            &secret,
            258,
            Some(&consumer_key),
        )
        .unwrap()
        {
            CredentialKind::Wireguard {
                public_key,
                peer_public_key,
                peer_endpoint,
                address,
                ..
            } => {
                // The allocated host, nothing from the secret.
                assert_eq!(address, "10.77.1.2/32");
                // The consumer's own public key; the peer is the provider's key.
                assert_eq!(public_key, consumer_key.as_str());
                assert_eq!(
                    peer_public_key,
                    identity::hex_encode(&identity::x25519_public(provider).unwrap())
                );
                assert_eq!(peer_endpoint, "10.0.0.9:7443");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn tunnel_addresses_never_collide_and_stay_with_their_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("t.sqlite").display()
            ),
            crate::store::PoolSize {
                max_connections: None,
            },
        )
        .await
        .unwrap();
        let c = |n: u8| ContractId(alloy::primitives::B256::repeat_byte(n));
        let a = tunnel_host(&store, "did:key:p", c(1)).await.unwrap();
        let b = tunnel_host(&store, "did:key:p", c(2)).await.unwrap();
        assert_eq!((a, b), (2, 3));
        assert_eq!(tunnel_host(&store, "did:key:p", c(1)).await.unwrap(), 2);
        assert_eq!(tunnel_host(&store, "did:key:q", c(3)).await.unwrap(), 2);
        // Concurrent allocations for many contracts: all distinct.
        let hosts = futures::future::join_all((10..40).map(|n| {
            let store = store.clone();
            async move { tunnel_host(&store, "did:key:p", c(n)).await.unwrap() }
        }))
        .await;
        let distinct: std::collections::BTreeSet<_> = hosts.iter().collect();
        assert_eq!(distinct.len(), hosts.len());
    }
}
