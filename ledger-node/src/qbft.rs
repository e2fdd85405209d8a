//! Production chain configuration: a QBFT network of Besu validators (GoQuorum reads the same
//! genesis `qbft` section). Generates the validator keys, the genesis with the validators in its
//! `extraData`, one Besu config per node and a start script. See docs/ledger-production.md.

use std::path::{Path, PathBuf};

use alloy::primitives::{hex, Address, Bytes, B256};
use alloy::rlp::{Encodable, Header};
use alloy::signers::local::PrivateKeySigner;

/// QBFT's genesis mixHash ("Istanbul/QBFT byzantine fault tolerance" magic).
pub const QBFT_MIX_HASH: &str =
    "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365";

/// Genesis `extraData` for QBFT: RLP([32-byte vanity, [validators], [] vote, round 0, [] seals]).
pub fn extra_data(validators: &[Address]) -> Bytes {
    let vanity = B256::ZERO;
    let empty: Vec<Bytes> = Vec::new();
    let round: u32 = 0;
    let payload_length = vanity.length()
        + validators.to_vec().length()
        + empty.length()
        + round.length()
        + empty.length();
    let mut out = Vec::with_capacity(payload_length + 3);
    Header {
        list: true,
        payload_length,
    }
    .encode(&mut out);
    vanity.encode(&mut out);
    validators.to_vec().encode(&mut out);
    empty.encode(&mut out);
    round.encode(&mut out);
    empty.encode(&mut out);
    out.into()
}

/// The genesis document: London rules with a zero base fee (a permissioned network pays no gas),
/// 2-second blocks.
pub fn genesis(chain_id: u64, validators: &[Address], alloc: &[Address]) -> serde_json::Value {
    let alloc: serde_json::Map<String, serde_json::Value> = alloc
        .iter()
        .map(|a| {
            (
                a.to_string(),
                serde_json::json!({ "balance": "0x33b2e3c9fd0803ce8000000" }),
            )
        })
        .collect();
    serde_json::json!({
        "config": {
            "chainId": chain_id,
            "homesteadBlock": 0,
            "eip150Block": 0,
            "eip155Block": 0,
            "eip158Block": 0,
            "byzantiumBlock": 0,
            "constantinopleBlock": 0,
            "petersburgBlock": 0,
            "istanbulBlock": 0,
            "berlinBlock": 0,
            "londonBlock": 0,
            "zeroBaseFee": true,
            "qbft": {
                "blockperiodseconds": 2,
                "epochlength": 30000,
                "requesttimeoutseconds": 4
            }
        },
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": "0x1fffffffffffff",
        "difficulty": "0x1",
        "mixHash": QBFT_MIX_HASH,
        "coinbase": "0x0000000000000000000000000000000000000000",
        "alloc": alloc,
        "extraData": extra_data(validators).to_string(),
    })
}

fn enode_id(signer: &PrivateKeySigner) -> String {
    let point = signer.credential().verifying_key().to_encoded_point(false);
    hex::encode(&point.as_bytes()[1..])
}

/// Writes `out/genesis.json`, `out/node-N/{key,config.toml}` and `out/start-node.sh`.
/// `alloc` accounts are funded in the genesis (the deployer, the broker's relayer).
pub fn write_network(
    out: &Path,
    validators: usize,
    chain_id: u64,
    alloc: &[Address],
) -> std::io::Result<Vec<PathBuf>> {
    if validators == 0 {
        return Err(std::io::Error::other(
            "a QBFT network needs at least one validator (four tolerate one faulty node)",
        ));
    }
    let keys: Vec<PrivateKeySigner> = (0..validators)
        .map(|_| PrivateKeySigner::random())
        .collect();
    let addresses: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    std::fs::create_dir_all(out)?;
    let mut written = Vec::new();
    let genesis_path = out.join("genesis.json");
    std::fs::write(
        &genesis_path,
        serde_json::to_string_pretty(&genesis(chain_id, &addresses, alloc)).expect("json") + "\n",
    )?;
    written.push(genesis_path);
    let bootnode = format!("enode://{}@127.0.0.1:30303", enode_id(&keys[0]));
    for (i, key) in keys.iter().enumerate() {
        let dir = out.join(format!("node-{}", i + 1));
        std::fs::create_dir_all(dir.join("data"))?;
        let key_path = dir.join("data").join("key");
        std::fs::write(&key_path, hex::encode(key.to_bytes()))?;
        restrict(&key_path)?;
        written.push(key_path);
        let bootnodes = if i == 0 {
            String::new()
        } else {
            format!("bootnodes=[\"{bootnode}\"]\n")
        };
        let config = format!(
            "# Besu validator {n} of {validators} (QBFT). Start: besu --config-file=config.toml\n\
             data-path=\"data\"\n\
             genesis-file=\"../genesis.json\"\n\
             p2p-host=\"127.0.0.1\"\n\
             p2p-port={p2p}\n\
             {bootnodes}\
             rpc-http-enabled=true\n\
             rpc-http-host=\"127.0.0.1\"\n\
             rpc-http-port={rpc}\n\
             rpc-http-api=[\"ETH\",\"NET\",\"WEB3\",\"QBFT\",\"TXPOOL\"]\n\
             host-allowlist=[\"localhost\",\"127.0.0.1\"]\n\
             min-gas-price=0\n\
             sync-mode=\"FULL\"\n",
            n = i + 1,
            p2p = 30303 + i,
            rpc = 8545 + i,
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config)?;
        written.push(config_path);
    }
    let script = out.join("start-node.sh");
    std::fs::write(
        &script,
        "#!/usr/bin/env sh\n# Usage: ./start-node.sh N  (run once per validator, N = 1..)\nset -eu\ncd \"$(dirname \"$0\")/node-$1\"\nexec besu --config-file=config.toml\n",
    )?;
    written.push(script);
    let validators_path = out.join("validators.json");
    std::fs::write(
        &validators_path,
        serde_json::to_string_pretty(&addresses).expect("json") + "\n",
    )?;
    written.push(validators_path);
    Ok(written)
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_data_matches_besus_documented_four_validator_genesis() {
        let validators: Vec<Address> = [
            "0x64a702e6263b7297a96638cac6ae65e6541f4169",
            "0x3923390ad55e90c237593b3b0e401f3b08a03185",
            "0xaefdb9a738c9f433e5b6b212a6d62f6370c2f692",
            "0xc7eeb9a4e00ce683cf93039b212648e01c6c6b78",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let expected = "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f8549464a702e6263b7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a0318594aefdb9a738c9f433e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78c080c0";
        assert_eq!(extra_data(&validators).to_string(), expected);
    }

    #[test]
    fn network_files_are_written_with_private_keys_protected() {
        let dir = tempfile::tempdir().unwrap();
        let alloc = [Address::repeat_byte(7)];
        let files = write_network(dir.path(), 4, 1337, &alloc).unwrap();
        assert_eq!(files.len(), 1 + 4 * 2 + 2);
        let genesis: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("genesis.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(genesis["config"]["chainId"], 1337);
        let validators: Vec<Address> = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("validators.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(genesis["extraData"], extra_data(&validators).to_string());
        assert!(genesis["alloc"][alloc[0].to_string()].is_object());
        let node2 = std::fs::read_to_string(dir.path().join("node-2/config.toml")).unwrap();
        assert!(node2.contains("bootnodes=[\"enode://"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("node-1/data/key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
    }
}
