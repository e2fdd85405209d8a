//! Ids as types: an offer id cannot be passed where a plan id is wanted, and only well-formed ids
//! can be made (parsed, deserialised), so handlers and the SDK never re-check them.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::B256;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not {what}")]
pub struct IdError {
    pub what: &'static str,
    pub value: String,
}

fn id_error(what: &'static str, value: &str) -> IdError {
    IdError {
        what,
        value: value.chars().take(80).collect(),
    }
}

/// 1-64 of `[A-Za-z0-9._-]`: what providers name offers and plans, and agents usage records.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A name chosen by a participant (offer, plan, usage record).
macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String, pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                if is_name(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(id_error($what, s))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                if is_name(&s) {
                    Ok(Self(s))
                } else {
                    Err(id_error($what, &s))
                }
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

name_id!(
    /// An offer's id, chosen by its provider, unique in the catalog.
    OfferId,
    "an offer id (1-64 of A-Z a-z 0-9 . _ -)"
);
name_id!(
    /// A plan's id, unique within its offer.
    PlanId,
    "a plan id (1-64 of A-Z a-z 0-9 . _ -)"
);
name_id!(
    /// A usage record's id, chosen by the provider's agent (random), unique per record.
    UsageRecordId,
    "a usage record id (1-64 of A-Z a-z 0-9 . _ -)"
);

/// A 32-byte id written as 0x and 64 hex digits (lower case on the way out, either case in).
macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{64}$")]
        pub struct $name(pub B256);

        impl $name {
            pub fn b256(self) -> B256 {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let hex = s.strip_prefix("0x").ok_or_else(|| id_error($what, s))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(id_error($what, s));
                }
                s.parse::<B256>().map(Self).map_err(|_| id_error($what, s))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.to_string()
            }
        }

        impl From<B256> for $name {
            fn from(v: B256) -> Self {
                Self(v)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

hash_id!(
    /// A contract's id: chosen at random by the broker when it reserves, the contract's id on
    /// chain.
    ContractId,
    "a contract id (0x and 64 hex digits)"
);
hash_id!(
    /// A peering channel session: the Noise handshake hash both ends share.
    SessionId,
    "a session id (0x and 64 hex digits)"
);

impl From<[u8; 32]> for SessionId {
    /// The id of a channel's session (`peering::channel::Channel::session`).
    fn from(hash: [u8; 32]) -> Self {
        Self(B256::from(hash))
    }
}
hash_id!(
    /// A reservation's id (the contract it becomes has the same id).
    ReservationId,
    "a reservation id (0x and 64 hex digits)"
);
hash_id!(
    /// A settlement batch's id: the hash of its record ids.
    BatchId,
    "a batch id (0x and 64 hex digits)"
);
hash_id!(
    /// A transaction's hash.
    TxHash,
    "a transaction hash (0x and 64 hex digits)"
);
hash_id!(
    /// A 32-byte hash: a record's keccak-256, a Merkle root, a terms hash.
    Hash32,
    "a 32-byte hash (0x and 64 hex digits)"
);

impl ReservationId {
    /// The contract a reservation becomes.
    pub fn contract(self) -> ContractId {
        ContractId(self.0)
    }
}

impl ContractId {
    pub fn reservation(self) -> ReservationId {
        ReservationId(self.0)
    }
}

/// A consumer's WireGuard public key (X25519), 64 lower-case hex digits. The consumer generates
/// the pair and keeps the private key; the contract document both parties sign names this half.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[0-9a-f]{64}$")]
pub struct WireguardKey(String);

impl WireguardKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The public half of an X25519 secret.
    pub fn of(secret: &[u8; 32]) -> Self {
        let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*secret));
        Self(identity::hex_encode(public.as_bytes()))
    }
}

impl FromStr for WireguardKey {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let hex = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        // The all-zero key is no one's: a consumer that sends it has no key.
        if hex && s.bytes().any(|b| b != b'0') {
            Ok(Self(s.to_string()))
        } else {
            Err(id_error(
                "a WireGuard public key (64 lower-case hex digits, not all zero)",
                s,
            ))
        }
    }
}

impl TryFrom<String> for WireguardKey {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<WireguardKey> for String {
    fn from(v: WireguardKey) -> String {
        v.0
    }
}

impl fmt::Display for WireguardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for WireguardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A peering credential's id: SHA-256 of its secret, 64 hex digits (the agent knows only this).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[0-9a-f]{64}$")]
pub struct CredentialHash(String);

impl CredentialHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CredentialHash {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_string()))
        } else {
            Err(id_error("a credential hash (64 lower-case hex digits)", s))
        }
    }
}

impl TryFrom<String> for CredentialHash {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<CredentialHash> for String {
    fn from(v: CredentialHash) -> String {
        v.0
    }
}

impl fmt::Display for CredentialHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CredentialHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A content identifier (IPFS CIDv1), checked when made.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^b[a-z2-7]{20,100}$", example = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")]
pub struct ContentId(content::Cid);

impl ContentId {
    pub fn cid(&self) -> &content::Cid {
        &self.0
    }
}

impl From<content::Cid> for ContentId {
    fn from(c: content::Cid) -> Self {
        Self(c)
    }
}

impl FromStr for ContentId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        content::Cid::parse(s)
            .map(Self)
            .map_err(|_| id_error("a CID (CIDv1, base32)", s))
    }
}

impl TryFrom<String> for ContentId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<ContentId> for String {
    fn from(v: ContentId) -> String {
        v.0.to_string()
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An Ed25519 signature, 128 hex digits.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[0-9a-fA-F]{128}$")]
pub struct Ed25519Signature(String);

impl Ed25519Signature {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Signs `message`, as a `domain` message, with `key`.
    pub fn sign(key: &ed25519_dalek::SigningKey, domain: identity::Domain, message: &[u8]) -> Self {
        Self(identity::sign_hex(key, domain, message))
    }

    /// Checks the signature is `did`'s over `message` as a `domain` message.
    pub fn verify(
        &self,
        did: &identity::Did,
        domain: identity::Domain,
        message: &[u8],
    ) -> Result<(), identity::IdentityError> {
        identity::verify_hex(did.as_str(), domain, message, &self.0)
    }
}

impl FromStr for Ed25519Signature {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.len() == 128 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(id_error("an Ed25519 signature (128 hex digits)", s))
        }
    }
}

impl TryFrom<String> for Ed25519Signature {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<Ed25519Signature> for String {
    fn from(v: Ed25519Signature) -> String {
        v.0
    }
}

impl fmt::Display for Ed25519Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Ed25519Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.0[..16])
    }
}

/// A secp256k1 signature (r, s, v): 0x and 130 hex digits, as EIP-712 and permits are signed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^0x[0-9a-fA-F]{130}$")]
pub struct EvmSignature(alloy::primitives::Bytes);

impl EvmSignature {
    pub fn bytes(&self) -> &alloy::primitives::Bytes {
        &self.0
    }

    pub fn signature(&self) -> alloy::primitives::Signature {
        // Checked when made: 65 bytes with a valid parity byte.
        alloy::primitives::Signature::try_from(self.0.as_ref())
            .expect("an EvmSignature holds 65 valid bytes")
    }
}

impl From<alloy::primitives::Signature> for EvmSignature {
    fn from(s: alloy::primitives::Signature) -> Self {
        Self(alloy::primitives::Bytes::from(s.as_bytes().to_vec()))
    }
}

impl TryFrom<alloy::primitives::Bytes> for EvmSignature {
    type Error = IdError;
    fn try_from(b: alloy::primitives::Bytes) -> Result<Self, IdError> {
        alloy::primitives::Signature::try_from(b.as_ref())
            .map(|_| Self(b.clone()))
            .map_err(|_| id_error("a 65-byte secp256k1 signature", &b.to_string()))
    }
}

impl FromStr for EvmSignature {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let hex = s
            .strip_prefix("0x")
            .filter(|h| h.len() == 130 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| id_error("a 65-byte secp256k1 signature (0x and 130 hex digits)", s))?;
        let bytes = identity::hex_decode(hex)
            .ok_or_else(|| id_error("a 65-byte secp256k1 signature", s))?;
        Self::try_from(alloy::primitives::Bytes::from(bytes))
    }
}

impl TryFrom<String> for EvmSignature {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<EvmSignature> for String {
    fn from(v: EvmSignature) -> String {
        v.0.to_string()
    }
}

impl fmt::Debug for EvmSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A 256-bit counter (a signature nonce) as a decimal string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^(0|[1-9][0-9]{0,77})$")]
pub struct Nonce(pub alloy::primitives::U256);

impl FromStr for Nonce {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        if s.is_empty()
            || !s.bytes().all(|b| b.is_ascii_digit())
            || (s.len() > 1 && s.starts_with('0'))
        {
            return Err(id_error("a nonce (a whole number)", s));
        }
        alloy::primitives::U256::from_str_radix(s, 10)
            .map(Self)
            .map_err(|_| id_error("a nonce (a whole number)", s))
    }
}

impl TryFrom<String> for Nonce {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<Nonce> for String {
    fn from(v: Nonce) -> String {
        v.0.to_string()
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_what_they_are_not() {
        assert!("o-1.x_2".parse::<OfferId>().is_ok());
        for bad in ["", "a b", "x/y", &"a".repeat(65)] {
            assert!(bad.parse::<OfferId>().is_err(), "{bad}");
        }
        let c: ContractId = format!("0x{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(c.to_string(), format!("0x{}", "ab".repeat(32)));
        assert_eq!(c.reservation().contract(), c);
        for bad in ["0x12", &"ab".repeat(32), &format!("0x{}", "zz".repeat(32))] {
            assert!(bad.parse::<ContractId>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ContractId>(&json).unwrap(), c);
        assert!(serde_json::from_str::<ContractId>("\"0x00\"").is_err());
        assert!("12".parse::<Nonce>().is_ok() && "012".parse::<Nonce>().is_err());
        assert!(
            format!("0x{}", "11".repeat(65))
                .parse::<EvmSignature>()
                .is_err(),
            "bad v"
        );
        assert!("00".parse::<Ed25519Signature>().is_err());
    }
}
