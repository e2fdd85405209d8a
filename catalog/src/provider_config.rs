//! A provider's configuration: how consumers reach it and what it runs under. Kept in the content
//! store (YAML or JSON, as the provider wrote it), its CID registered on chain.

use serde::{Deserialize, Serialize};

/// Largest configuration accepted.
pub const MAX_CONFIG_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    /// Where consumers connect (at least one).
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub capacity: Capacity,
    #[serde(default)]
    pub policies: Policies,
    #[serde(default)]
    pub connection: Connection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capacity {
    #[serde(default)]
    pub cpu_millicores: u64,
    #[serde(default)]
    pub memory_mib: u64,
    #[serde(default)]
    pub storage_gib: u64,
    #[serde(default)]
    pub gpus: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policies {
    /// The provider's agent signs contract documents for its offers by itself.
    #[serde(default)]
    pub auto_accept: bool,
    /// Most contracts the provider runs at once (none: the plans' capacities decide).
    #[serde(default)]
    pub max_contracts: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connection {
    #[serde(default)]
    pub kind: ConnectionKind,
    #[serde(default)]
    pub node_id: String,
}

/// How consumers connect to the provider; the peering credential has the same kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    /// Mercato's own channel to the provider's agent.
    #[default]
    Generic,
    Liqo,
    Wireguard,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the configuration is over {MAX_CONFIG_BYTES} bytes")]
    TooLarge,
    #[error("the configuration is not valid YAML/JSON of a provider configuration: {0}")]
    Parse(String),
    #[error("the configuration is invalid: {0}")]
    Invalid(&'static str),
}

/// Parses and checks a configuration (YAML, of which JSON is a subset).
pub fn parse(bytes: &[u8]) -> Result<ProviderConfig, ConfigError> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge);
    }
    let c: ProviderConfig =
        serde_yaml::from_slice(bytes).map_err(|e| ConfigError::Parse(e.to_string()))?;
    if c.name.trim().is_empty() {
        return Err(ConfigError::Invalid("name is empty"));
    }
    if c.endpoints.is_empty() {
        return Err(ConfigError::Invalid("at least one endpoint is needed"));
    }
    if c.endpoints.iter().any(|e| url::Url::parse(&e.url).is_err()) {
        return Err(ConfigError::Invalid(
            "every endpoint url must be an absolute URL",
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json_configs_parse_and_bad_ones_say_why() {
        let yaml = b"name: edge-1\nendpoints:\n  - name: api\n    url: https://edge-1.example:8443\npolicies:\n  autoAccept: true\n";
        let c = parse(yaml).unwrap();
        assert!(c.policies.auto_accept);
        assert_eq!(c.connection.kind, ConnectionKind::Generic);
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(parse(&json).unwrap(), c);
        assert!(matches!(
            parse(b"name: x\nendpoints: []\n"),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            parse(b"name: x\nendpoints:\n  - {name: a, url: 'not a url'}\n"),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            parse(b"name: x\nendpoints: []\nsurprise: 1\n"),
            Err(ConfigError::Parse(_))
        ));
        assert!(matches!(
            parse(b"name: x\nendpoints:\n  - {name: a, url: 'tcp://h:1'}\nconnection:\n  kind: carrier-pigeon\n"),
            Err(ConfigError::Parse(_))
        ));
        assert_eq!(
            parse(&vec![b' '; MAX_CONFIG_BYTES + 1]),
            Err(ConfigError::TooLarge)
        );
    }
}
