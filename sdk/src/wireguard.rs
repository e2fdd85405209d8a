//! The consumer's WireGuard keys: generated here for a purchase from a provider that connects
//! over WireGuard, the public half named in the contract document, the private half kept in a
//! file only its owner reads (`wireguard/<contract>.key` beside the participant's key). The broker
//! never sees it.

use std::path::{Path, PathBuf};

use api::{ContractId, OfferId, WireguardKey};
use catalog::provider_config::ConnectionKind;

use crate::client::SdkError;
use crate::session::Session;

/// A fresh WireGuard key pair; its `Debug` leaves the secret out.
pub struct WireguardPair {
    secret: [u8; 32],
    pub public: WireguardKey,
}

impl std::fmt::Debug for WireguardPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireguardPair")
            .field("secret", &"[redacted]")
            .field("public", &self.public)
            .finish()
    }
}

impl WireguardPair {
    pub fn generate() -> Self {
        let secret = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng).to_bytes();
        Self {
            public: WireguardKey::of(&secret),
            secret,
        }
    }

    /// Keeps the private key for `contract` (owner-only file, written whole).
    pub fn save(&self, key_path: &Path, contract: ContractId) -> std::io::Result<PathBuf> {
        let path = private_key_path(key_path, contract);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::files::write_private(&path, identity::hex_encode(&self.secret).as_bytes())?;
        Ok(path)
    }
}

/// Where the private key of `contract`'s tunnel is kept, beside the participant's key file.
pub fn private_key_path(key_path: &Path, contract: ContractId) -> PathBuf {
    key_path
        .with_file_name("wireguard")
        .join(format!("{contract}.key"))
}

/// The private key (hex) kept for `contract`, checked against the public key the envelope names.
pub fn load_private_key(
    key_path: &Path,
    contract: ContractId,
    public: &str,
) -> Result<String, SdkError> {
    let path = private_key_path(key_path, contract);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        SdkError::Peering(format!(
            "no WireGuard private key for contract {contract} at {} ({e}): it is made by `mercato buy` on the machine that bought the contract",
            path.display()
        ))
    })?;
    let secret: [u8; 32] = identity::hex_decode(text.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SdkError::Peering(format!("{} holds no WireGuard key", path.display())))?;
    if WireguardKey::of(&secret).as_str() != public {
        return Err(SdkError::Mismatch(format!(
            "the credential names WireGuard key {public}, not the one this consumer made for contract {contract}"
        )));
    }
    Ok(identity::hex_encode(&secret))
}

impl Session {
    /// A fresh key pair when the offer's provider connects over WireGuard (the reservation then
    /// names its public half); none otherwise.
    pub async fn wireguard_pair_for(
        &self,
        offer: &OfferId,
    ) -> Result<Option<WireguardPair>, SdkError> {
        let provider: api::Did = self
            .client
            .offer(offer)
            .await?
            .offer
            .provider
            .parse()
            .map_err(|_| SdkError::Mismatch("the offer's provider is not a did:key".into()))?;
        let config = match self.client.provider_config(&provider).await {
            Ok(c) => c,
            Err(SdkError::Api { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let parsed = catalog::provider_config::parse(config.config.as_bytes())
            .map_err(|e| SdkError::Decode(format!("the provider's configuration: {e}")))?;
        Ok((parsed.connection.kind == ConnectionKind::Wireguard).then(WireguardPair::generate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_private_key_is_kept_beside_the_participants_key_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key.hex");
        let contract = ContractId(alloy::primitives::B256::repeat_byte(3));
        let pair = WireguardPair::generate();
        assert!(!format!("{pair:?}").contains(&identity::hex_encode(&pair.secret)));
        pair.save(&key_path, contract).unwrap();
        let hex = load_private_key(&key_path, contract, pair.public.as_str()).unwrap();
        assert_eq!(hex, identity::hex_encode(&pair.secret));
        let other = WireguardPair::generate();
        assert!(matches!(
            load_private_key(&key_path, contract, other.public.as_str()),
            Err(SdkError::Mismatch(_))
        ));
        let elsewhere = ContractId(alloy::primitives::B256::repeat_byte(4));
        assert!(load_private_key(&key_path, elsewhere, pair.public.as_str()).is_err());
    }
}
