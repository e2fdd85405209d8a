//! CIDv1 with SHA-256 multihashes, in the base32 text form IPFS prints (`bafy…`, `bafkrei…`).

use std::fmt;

use sha2::{Digest, Sha256};

/// Multicodec of a raw block.
pub const RAW: u64 = 0x55;
/// Multicodec of a dag-pb block.
pub const DAG_PB: u64 = 0x70;
const SHA2_256: u64 = 0x12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    pub codec: u64,
    pub digest: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    #[error("{0:?} is not a CIDv1 in base32 (bafy… or bafk…)")]
    Text(String),
    #[error("unsupported CID: {0}")]
    Unsupported(String),
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint; returns (value, bytes used).
pub fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(BASE32[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = BASE32.iter().position(|&x| x == c)? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

impl Cid {
    /// The CID of a block with `codec`.
    pub fn of(codec: u64, block: &[u8]) -> Self {
        Self {
            codec,
            digest: Sha256::digest(block).into(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(36);
        put_varint(&mut out, 1);
        put_varint(&mut out, self.codec);
        put_varint(&mut out, SHA2_256);
        put_varint(&mut out, 32);
        out.extend_from_slice(&self.digest);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CidError> {
        let bad = || CidError::Unsupported(format!("{} bytes", bytes.len()));
        let mut at = 0;
        let mut next = || -> Result<u64, CidError> {
            let (v, n) = get_varint(&bytes[at..]).ok_or_else(bad)?;
            at += n;
            Ok(v)
        };
        let (version, codec, hash, len) = (next()?, next()?, next()?, next()?);
        if version != 1 || hash != SHA2_256 || len != 32 {
            return Err(CidError::Unsupported(format!(
                "version {version}, multihash {hash:#x}/{len}"
            )));
        }
        if codec != RAW && codec != DAG_PB {
            return Err(CidError::Unsupported(format!("codec {codec:#x}")));
        }
        let digest: [u8; 32] = bytes
            .get(at..at + 32)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(bad)?;
        if bytes.len() != at + 32 {
            return Err(bad());
        }
        Ok(Self { codec, digest })
    }

    /// Parses base32 (`b…`, what Kubo prints) or base58btc (`z…`, what js-ipfs prints).
    pub fn parse(text: &str) -> Result<Self, CidError> {
        let bad = || CidError::Text(text.to_string());
        let bytes = match text.split_at_checked(1) {
            Some(("b", body)) => unbase32(body).ok_or_else(bad)?,
            Some(("z", body)) => bs58::decode(body).into_vec().map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        Self::from_bytes(&bytes)
    }

    /// True when `block` is what this CID names.
    pub fn verifies(&self, block: &[u8]) -> bool {
        let d: [u8; 32] = Sha256::digest(block).into();
        d == self.digest
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", base32(&self.to_bytes()))
    }
}

impl std::str::FromStr for Cid {
    type Err = CidError;
    fn from_str(s: &str) -> Result<Self, CidError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_raw_block_has_the_well_known_cid() {
        let cid = Cid::of(RAW, b"");
        assert_eq!(
            cid.to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(Cid::parse(&cid.to_string()).unwrap(), cid);
    }

    #[test]
    fn base58_cids_parse_too() {
        let cid = Cid::parse("zb2rhm3Uo1g4nXYbWQ3sjP9XdJBB99AMcoqUwJd7WSqDtu3hA").unwrap();
        assert_eq!(cid.codec, RAW);
        assert!(cid.to_string().starts_with("bafkrei"));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "Qm123",
            "bafy!!",
            "b",
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvy",
        ] {
            assert!(Cid::parse(bad).is_err(), "{bad}");
        }
    }
}
