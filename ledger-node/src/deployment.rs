//! `deployment.json`: where the contracts live on a chain. Written once, atomically, after every
//! contract is deployed and configured, so a half-finished deployment is never recorded.

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use alloy::providers::Provider;
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "deployment.json";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    pub format_version: u32,
    pub chain_id: u64,
    /// First block that holds any of these contracts: indexers start here.
    pub deployment_block: u64,
    pub deployer: Address,
    /// The broker's relayer account, holding the broker/registrar/settler/issuer roles.
    pub broker: Address,
    pub contracts: ContractAddresses,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContractAddresses {
    pub credit_token: Address,
    pub participant_registry: Address,
    pub marketplace: Address,
    pub billing_models: Address,
    pub usage_settlement: Address,
    pub credential_registry: Address,
}

impl ContractAddresses {
    pub fn all(&self) -> [(&'static str, Address); 6] {
        [
            ("CreditToken", self.credit_token),
            ("ParticipantRegistry", self.participant_registry),
            ("Marketplace", self.marketplace),
            ("BillingModels", self.billing_models),
            ("UsageSettlement", self.usage_settlement),
            ("CredentialRegistry", self.credential_registry),
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({reason}); move it away and deploy again (`ledger-node deploy` or `ledger-node up` on a fresh data directory)")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("deployment.json is for chain {recorded} but the node at the RPC URL is chain {actual}; point at the right node or deploy again")]
    WrongChain { recorded: u64, actual: u64 },
    #[error("deployment.json says {name} is at {address} but there is no code there (the chain state was reset?); deploy again into a fresh data directory")]
    MissingCode {
        name: &'static str,
        address: Address,
    },
    #[error("RPC error while checking the deployment: {0}")]
    Rpc(String),
}

impl Deployment {
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Reads and validates a deployment file; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, DeploymentError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(DeploymentError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        let corrupt = |reason: String| DeploymentError::Corrupt {
            path: path.into(),
            reason,
        };
        let d: Deployment = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if d.format_version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} is not {FORMAT_VERSION}",
                d.format_version
            )));
        }
        if let Some((name, _)) = d.contracts.all().iter().find(|(_, a)| a.is_zero()) {
            return Err(corrupt(format!("{name} has the zero address")));
        }
        Ok(Some(d))
    }

    /// Writes through a temporary file and a rename, so readers never see half a file.
    pub fn save(&self, path: &Path) -> Result<(), DeploymentError> {
        let write_err = |source| DeploymentError::Write {
            path: path.into(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("deployment serialises");
        std::fs::write(&tmp, text + "\n").map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// Checks the node is the recorded chain and every contract has code.
    pub async fn verify_on<P: Provider>(&self, provider: &P) -> Result<(), DeploymentError> {
        let actual = provider
            .get_chain_id()
            .await
            .map_err(|e| DeploymentError::Rpc(e.to_string()))?;
        if actual != self.chain_id {
            return Err(DeploymentError::WrongChain {
                recorded: self.chain_id,
                actual,
            });
        }
        for (name, address) in self.contracts.all() {
            let code = provider
                .get_code_at(address)
                .await
                .map_err(|e| DeploymentError::Rpc(e.to_string()))?;
            if code.is_empty() {
                return Err(DeploymentError::MissingCode { name, address });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Deployment {
        let a = |n: u8| Address::repeat_byte(n);
        Deployment {
            format_version: FORMAT_VERSION,
            chain_id: 31337,
            deployment_block: 1,
            deployer: a(1),
            broker: a(2),
            contracts: ContractAddresses {
                credit_token: a(3),
                participant_registry: a(4),
                marketplace: a(5),
                billing_models: a(6),
                usage_settlement: a(7),
                credential_registry: a(8),
            },
        }
    }

    #[test]
    fn round_trips_and_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = Deployment::path_in(dir.path());
        assert!(Deployment::load(&path).unwrap().is_none());
        sample().save(&path).unwrap();
        assert_eq!(Deployment::load(&path).unwrap().unwrap(), sample());
    }

    #[test]
    fn corrupt_files_are_refused_with_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = Deployment::path_in(dir.path());
        for bad in [
            "{ not json".to_string(),
            serde_json::to_string(&serde_json::json!({"chainId": 1})).unwrap(),
            serde_json::to_string(&Deployment {
                format_version: 99,
                ..sample()
            })
            .unwrap(),
            serde_json::to_string(&Deployment {
                contracts: ContractAddresses {
                    marketplace: Address::ZERO,
                    ..sample().contracts
                },
                ..sample()
            })
            .unwrap(),
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = Deployment::load(&path).unwrap_err();
            assert!(matches!(err, DeploymentError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("deploy again"));
        }
    }
}
