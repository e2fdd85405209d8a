//! The participant's keys on disk: its Ed25519 did key (`identity::keyfile`) and its EVM account
//! key beside it, each as hex in a file only its owner can read.

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use ed25519_dalek::SigningKey;

use identity::keyfile::write_secret;
pub use identity::keyfile::{default_path, generate, load, KeyError};

/// The participant's EVM account key lives beside its did key: `evm-<name>`.
pub fn evm_path(key_path: &Path) -> PathBuf {
    let name = key_path
        .file_name()
        .map_or_else(|| "key.hex".into(), |n| n.to_string_lossy().into_owned());
    key_path.with_file_name(format!("evm-{name}"))
}

/// Creates the EVM account key (secp256k1) at `path` (never over an existing one).
pub fn generate_evm(path: &Path) -> Result<PrivateKeySigner, KeyError> {
    if path.exists() {
        return Err(KeyError::Exists(path.to_path_buf()));
    }
    let signer = PrivateKeySigner::random();
    write_secret(path, &identity::hex_encode(signer.to_bytes().as_slice()))?;
    Ok(signer)
}

/// Loads the EVM account key at `path`.
pub fn load_evm(path: &Path) -> Result<PrivateKeySigner, KeyError> {
    if !path.exists() {
        return Err(KeyError::Missing(path.to_path_buf()));
    }
    ledger::accounts::signer_from_file(path).map_err(|_| KeyError::Malformed(path.to_path_buf()))
}

pub fn did(key: &SigningKey) -> api::Did {
    identity::did_of(&key.verifying_key())
}
