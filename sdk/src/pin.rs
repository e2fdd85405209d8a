//! Which broker a participant talks to, by its did:key: given, or pinned on first use (in memory,
//! or in a known-brokers file as ssh pins host keys). A broker that later shows another did is
//! refused: it is another broker (or a replaced key), and logins and envelopes name the pinned
//! one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api::Did;

use crate::client::SdkError;

/// How a session knows its broker's did.
#[derive(Debug, Clone)]
pub enum BrokerPin {
    /// Whatever the broker first says, for the life of the session.
    FirstUse,
    /// This did (`--broker-did`); anything else is refused.
    Given(Did),
    /// Pinned on first use in this file (origin → did), kept across runs.
    File(PathBuf),
}

/// The known-brokers file beside a participant's key file.
pub fn known_brokers_path(key_path: &Path) -> PathBuf {
    key_path.with_file_name("known-brokers.json")
}

fn changed(origin: &str, pinned: &Did, shown: &Did, how: &str) -> SdkError {
    SdkError::BrokerChanged(format!(
        "the broker at {origin} says it is {shown}, but {pinned} is {how}: another broker, or its key was replaced"
    ))
}

impl BrokerPin {
    /// The broker dids this pin trusts: the one given, or every one pinned in the file.
    pub fn trusted(&self) -> Vec<Did> {
        match self {
            Self::FirstUse => Vec::new(),
            Self::Given(did) => vec![did.clone()],
            Self::File(path) => std::fs::read(path)
                .ok()
                .and_then(|b| serde_json::from_slice::<BTreeMap<String, Did>>(&b).ok())
                .map(|m| m.into_values().collect())
                .unwrap_or_default(),
        }
    }

    /// Checks `shown` (what the broker at `origin` says it is) against the pin, pinning it first
    /// where nothing is pinned yet.
    pub fn check(&self, origin: &str, shown: &Did) -> Result<(), SdkError> {
        match self {
            Self::FirstUse => Ok(()),
            Self::Given(did) if did == shown => Ok(()),
            Self::Given(did) => Err(changed(origin, did, shown, "the one given")),
            Self::File(path) => {
                let io = |e: std::io::Error| {
                    SdkError::BrokerChanged(format!("cannot use {}: {e}", path.display()))
                };
                let mut known: BTreeMap<String, Did> = match std::fs::read(path) {
                    Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                        SdkError::BrokerChanged(format!(
                            "{} is not a known-brokers file ({e}); repair or remove it",
                            path.display()
                        ))
                    })?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
                    Err(e) => return Err(io(e)),
                };
                match known.get(origin) {
                    Some(did) if did == shown => Ok(()),
                    Some(did) => Err(changed(
                        origin,
                        did,
                        shown,
                        &format!(
                            "pinned in {} (remove its line there if the change is expected)",
                            path.display()
                        ),
                    )),
                    None => {
                        known.insert(origin.to_string(), shown.clone());
                        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                            std::fs::create_dir_all(dir).map_err(io)?;
                        }
                        let bytes = serde_json::to_vec_pretty(&known)
                            .map_err(|e| io(std::io::Error::other(e)))?;
                        crate::files::write_private(path, &bytes).map_err(io)?;
                        tracing::info!(%origin, did = %shown, file = %path.display(), "pinned the broker's identity");
                        Ok(())
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn did() -> Did {
        identity::did_of(&identity::generate().verifying_key())
    }

    #[test]
    fn a_pinned_broker_cannot_change_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let pin = BrokerPin::File(dir.path().join("known-brokers.json"));
        let (a, b) = (did(), did());
        pin.check("https://broker.example", &a).unwrap();
        pin.check("https://broker.example", &a).unwrap();
        // Another origin is another broker: pinned on its own.
        pin.check("https://other.example", &b).unwrap();
        let e = pin.check("https://broker.example", &b).unwrap_err();
        assert!(matches!(e, SdkError::BrokerChanged(_)), "{e}");
        assert!(BrokerPin::Given(a.clone())
            .check("https://x.example", &b)
            .is_err());
        BrokerPin::Given(a.clone())
            .check("https://x.example", &a)
            .unwrap();
    }
}
