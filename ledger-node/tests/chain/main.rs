//! The chain client, deployment and `ledger-node` against a real Anvil.

mod cli;
mod client;
mod deploy;
mod proxy;

use ledger::anvil::AnvilOptions;
use ledger::devnet::{self, Devnet};

pub struct Net {
    pub net: Devnet,
    pub _dir: tempfile::TempDir,
}

pub async fn devnet() -> Net {
    let dir = tempfile::tempdir().unwrap();
    let options = AnvilOptions {
        port: 0,
        ..AnvilOptions::new(dir.path())
    };
    let net = devnet::up(&options, |_| {}).await.unwrap();
    Net { net, _dir: dir }
}
