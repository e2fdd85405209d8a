//! Peering credentials of active contracts: minted when a contract becomes active, sealed to the
//! consumer, announced to the provider's agent by hash (`credential.issued`), rotated on the
//! consumer's request (the old one works for a grace period), revoked when the contract closes or
//! an operator says so. The broker never stores a secret in the clear.

use catalog::provider_config::ProviderConfig;
use peering::envelope::{Credential, CredentialKind, ENVELOPE_VERSION};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::records::{flush, ContractRecord, Pending};
use super::MarketError;
use crate::events::outbox::{Audience, Topic};
use crate::store::Store;

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

/// What the broker keeps of a credential.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRecord {
    pub hash: String,
    pub contract_id: String,
    pub version: u64,
    pub consumer: String,
    pub kind: String,
    pub not_before: u64,
    pub expires_at: u64,
    pub renew_before: u64,
    pub revoked_at: Option<u64>,
    /// The envelope sealed to the consumer (`peering::SealedCredential`).
    pub sealed: serde_json::Value,
}

fn record(r: &AnyRow) -> CredentialRecord {
    CredentialRecord {
        hash: r.get(0),
        contract_id: r.get(1),
        version: r.get::<i64, _>(2) as u64,
        consumer: r.get(3),
        kind: r.get(4),
        not_before: r.get::<i64, _>(5) as u64,
        expires_at: r.get::<i64, _>(6) as u64,
        renew_before: r.get::<i64, _>(7) as u64,
        revoked_at: r.get::<Option<i64>, _>(8).map(|t| t as u64),
        sealed: serde_json::from_str(&r.get::<String, _>(9)).unwrap_or_default(),
    }
}

const COLUMNS: &str =
    "hash, contract_id, version, consumer, kind, not_before, expires_at, renew_before, revoked_at, sealed";

fn random_hex<const N: usize>() -> String {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    catalog::identity::hex_encode(&b)
}

/// The envelope's kind from the provider's configuration (generic when it has none).
fn kind_for(config: Option<&ProviderConfig>, provider: &str, secret: &str) -> CredentialKind {
    let Some(config) = config else {
        return CredentialKind::Generic;
    };
    let endpoint = config
        .endpoints
        .first()
        .map(|e| e.url.clone())
        .unwrap_or_default();
    match config.connection.kind.as_str() {
        "liqo" => CredentialKind::Liqo {
            cluster_id: if config.connection.node_id.is_empty() {
                provider.to_string()
            } else {
                config.connection.node_id.clone()
            },
            cluster_name: config.name.clone(),
            token: secret.to_string(),
            endpoint,
        },
        "wireguard" => {
            let private = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
            let public = x25519_dalek::PublicKey::from(&private);
            let b = |x: &[u8]| catalog::identity::hex_encode(x);
            let peer = peering::keys::x25519_public(provider).unwrap_or_default();
            let host = endpoint
                .split("://")
                .nth(1)
                .unwrap_or(&endpoint)
                .trim_end_matches('/')
                .to_string();
            let octet = |i: usize| u8::from_str_radix(&secret[i..i + 2], 16).unwrap_or(1);
            CredentialKind::Wireguard {
                private_key: b(private.as_bytes()),
                public_key: b(public.as_bytes()),
                address: format!("10.77.{}.{}/32", octet(0), octet(2).max(1)),
                peer_public_key: b(&peer),
                peer_endpoint: host,
                allowed_ips: "10.77.0.0/16".into(),
            }
        }
        _ => CredentialKind::Generic,
    }
}

fn kind_name(k: &CredentialKind) -> &'static str {
    match k {
        CredentialKind::Generic => "generic",
        CredentialKind::Liqo { .. } => "liqo",
        CredentialKind::Wireguard { .. } => "wireguard",
    }
}

/// Mints a credential for an active contract, seals it to the consumer, announces its hash.
pub async fn issue(
    store: &Store,
    contract: &ContractRecord,
    config: Option<&ProviderConfig>,
    policy: CredentialPolicy,
    now: u64,
) -> Result<CredentialRecord, MarketError> {
    let secret = random_hex::<32>();
    let kind = kind_for(config, &contract.provider, &secret);
    let credential = Credential {
        version: ENVELOPE_VERSION,
        kind,
        contract_id: contract.id.clone(),
        provider_node_id: contract.provider.clone(),
        endpoints: config
            .map(|c| c.endpoints.iter().map(|e| e.url.clone()).collect())
            .unwrap_or_default(),
        consumer_key: contract.consumer.clone(),
        secret,
        not_before: now,
        expires_at: now + policy.ttl_secs,
        renew_before: now + policy.ttl_secs - policy.ttl_secs / 5,
    };
    let sealed = peering::seal(&credential, &contract.consumer)
        .map_err(|e| MarketError::Corrupt(format!("cannot seal to the consumer: {e}")))?;
    let hash = credential.hash();
    let mut tx = store.begin().await?;
    let version: (i64,) = sqlx::query_as(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM credentials WHERE contract_id = $1",
    )
    .bind(contract.id.clone())
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO credentials ({COLUMNS}, provider, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10, $11)"
    ))
    .bind(hash.clone())
    .bind(contract.id.clone())
    .bind(version.0)
    .bind(contract.consumer.clone())
    .bind(kind_name(&credential.kind))
    .bind(credential.not_before as i64)
    .bind(credential.expires_at as i64)
    .bind(credential.renew_before as i64)
    .bind(serde_json::to_string(&sealed).unwrap_or_default())
    .bind(contract.provider.clone())
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    let event = Pending {
        topic: Topic::CredentialIssued,
        subject: contract.id.clone(),
        audience: Audience::parties(&[&contract.consumer, &contract.provider]),
        payload: json!({
            "contract": contract.id, "hash": hash, "version": version.0,
            "consumer": contract.consumer, "notBefore": credential.not_before,
            "expiresAt": credential.expires_at,
        }),
    };
    flush(&mut tx, store, vec![event], now).await?;
    tx.commit().await?;
    get(store, &hash)
        .await?
        .ok_or(MarketError::NoContract(contract.id.clone()))
}

pub async fn get(store: &Store, hash: &str) -> Result<Option<CredentialRecord>, MarketError> {
    Ok(sqlx::query(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE hash = $1"
    ))
    .bind(hash.to_string())
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(record))
}

/// A contract's credentials that still work at `now`, newest first.
pub async fn live(
    store: &Store,
    contract: &str,
    now: u64,
) -> Result<Vec<CredentialRecord>, MarketError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM credentials WHERE contract_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY version DESC"
    ))
    .bind(contract.to_string())
    .bind(now as i64)
    .fetch_all(store.pool())
    .await?;
    Ok(rows.iter().map(record).collect())
}

/// Active contracts whose credentials are all gone (never issued, or a crash in between).
pub async fn missing(store: &Store, now: u64) -> Result<Vec<String>, MarketError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT c.id FROM contracts c WHERE c.state = 'active' AND NOT EXISTS \
         (SELECT 1 FROM credentials k WHERE k.contract_id = c.id AND k.revoked_at IS NULL AND k.expires_at > $1) \
         AND NOT EXISTS (SELECT 1 FROM contract_escrow e WHERE e.contract_id = c.id AND e.suspended_at IS NOT NULL)",
    )
    .bind(now as i64)
    .fetch_all(store.pool())
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// After a renewal: the older live credentials work until `now + grace`.
pub async fn retire_older(
    store: &Store,
    contract: &ContractRecord,
    newest: &str,
    grace_secs: u64,
    now: u64,
) -> Result<(), MarketError> {
    let until = now + grace_secs;
    let mut tx = store.begin().await?;
    let older: Vec<(String,)> = sqlx::query_as(
        "SELECT hash FROM credentials WHERE contract_id = $1 AND hash <> $2 AND revoked_at IS NULL AND expires_at > $3",
    )
    .bind(contract.id.clone())
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
    .bind(contract.id.clone())
    .bind(newest.to_string())
    .execute(&mut *tx)
    .await?;
    let hashes: Vec<String> = older.into_iter().map(|(h,)| h).collect();
    let event = Pending {
        topic: Topic::CredentialRotated,
        subject: contract.id.clone(),
        audience: Audience::parties(&[&contract.consumer, &contract.provider]),
        payload: json!({"contract": contract.id, "replaced": hashes, "until": until, "by": newest}),
    };
    flush(&mut tx, store, vec![event], now).await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes every live credential of a contract in `tx` (the caller's change, e.g. the close);
/// returns the event announcing it, if there was anything to revoke.
pub async fn revoke_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    contract: &ContractRecord,
    why: &str,
    now: u64,
) -> Result<Option<Pending>, sqlx::Error> {
    let hashes: Vec<(String,)> = sqlx::query_as(
        "SELECT hash FROM credentials WHERE contract_id = $1 AND revoked_at IS NULL",
    )
    .bind(contract.id.clone())
    .fetch_all(&mut **tx)
    .await?;
    if hashes.is_empty() {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE credentials SET revoked_at = $1 WHERE contract_id = $2 AND revoked_at IS NULL",
    )
    .bind(now as i64)
    .bind(contract.id.clone())
    .execute(&mut **tx)
    .await?;
    let hashes: Vec<String> = hashes.into_iter().map(|(h,)| h).collect();
    Ok(Some(Pending {
        topic: Topic::CredentialRevoked,
        subject: contract.id.clone(),
        audience: Audience::parties(&[&contract.consumer, &contract.provider]),
        payload: json!({"contract": contract.id, "revoked": hashes, "reason": why}),
    }))
}

/// An operator's revocation (or any revocation outside a state change).
pub async fn revoke(
    store: &Store,
    contract: &ContractRecord,
    why: &str,
    now: u64,
) -> Result<usize, MarketError> {
    let mut tx = store.begin().await?;
    let event = revoke_in(&mut tx, contract, why, now).await?;
    let n = event
        .as_ref()
        .and_then(|e| e.payload["revoked"].as_array().map(Vec::len))
        .unwrap_or(0);
    flush(&mut tx, store, event.into_iter().collect(), now).await?;
    tx.commit().await?;
    Ok(n)
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
        let provider = catalog::identity::did_of(
            &ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng).verifying_key(),
        );
        let secret = random_hex::<32>();
        assert_eq!(kind_for(None, &provider, &secret), CredentialKind::Generic);
        assert_eq!(
            kind_for(Some(&config("generic")), &provider, &secret),
            CredentialKind::Generic
        );
        match kind_for(Some(&config("liqo")), &provider, &secret) {
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
        match kind_for(Some(&config("wireguard")), &provider, &secret) {
            CredentialKind::Wireguard {
                private_key,
                public_key,
                peer_public_key,
                peer_endpoint,
                ..
            } => {
                // The consumer's key pair is a real pair; the peer is the provider's key.
                let sk: [u8; 32] = catalog::identity::hex_decode(&private_key)
                    .unwrap()
                    .try_into()
                    .unwrap();
                let pk = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(sk));
                assert_eq!(catalog::identity::hex_encode(pk.as_bytes()), public_key);
                assert_eq!(
                    peer_public_key,
                    catalog::identity::hex_encode(
                        &peering::keys::x25519_public(&provider).unwrap()
                    )
                );
                assert_eq!(peer_endpoint, "10.0.0.9:7443");
            }
            other => panic!("{other:?}"),
        }
    }
}
