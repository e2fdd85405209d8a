//! Accounts: the development chain's well-known accounts, and signing keys read from files.

use std::path::Path;

use alloy::signers::local::{MnemonicBuilder, PrivateKeySigner};

/// The development mnemonic (Anvil's and Hardhat's default). Public knowledge: never fund these
/// accounts on a real network.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";
/// Index of the deployer / admin account on the development chain.
pub const DEPLOYER_INDEX: u32 = 0;
/// Index of the broker's relayer account on the development chain.
pub const BROKER_INDEX: u32 = 1;
/// How many development accounts Anvil funds.
pub const DEV_ACCOUNTS: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} does not hold a secp256k1 private key as 64 hex digits (optionally 0x-prefixed)")]
    Malformed { path: String },
    #[error("cannot derive development account {0}")]
    Derive(u32),
}

pub fn dev_signer(index: u32) -> Result<PrivateKeySigner, KeyError> {
    MnemonicBuilder::from_phrase(DEV_MNEMONIC)
        .index(index)
        .and_then(|b| b.build())
        .map_err(|_| KeyError::Derive(index))
}

/// Reads a private key from a file holding it as hex. The key itself never appears in errors.
pub fn signer_from_file(path: &Path) -> Result<PrivateKeySigner, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    if hex.len() != 64 {
        return Err(KeyError::Malformed {
            path: path.display().to_string(),
        });
    }
    hex.parse::<PrivateKeySigner>()
        .map_err(|_| KeyError::Malformed {
            path: path.display().to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_accounts_are_anvils_defaults() {
        let deployer = dev_signer(0).unwrap();
        assert_eq!(
            deployer.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
    }

    #[test]
    fn key_files_parse_or_fail_without_echoing_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(
            &good,
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n",
        )
        .unwrap();
        assert_eq!(
            signer_from_file(&good).unwrap().address(),
            dev_signer(0).unwrap().address()
        );
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "0xnot-a-key-but-secret-text").unwrap();
        let err = signer_from_file(&bad).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"));
        assert!(!err.contains("secret-text"));
        assert!(matches!(
            signer_from_file(&dir.path().join("missing")),
            Err(KeyError::Read { .. })
        ));
    }
}
