//! Mercato's content store. Configurations and contract documents are addressed by the CIDs IPFS
//! gives them (`ipfs add --cid-version=1`: raw leaves, 256 KiB chunks, balanced DAG), so a CID
//! computed here, by the embedded store or by Kubo is the same, and content read back is checked
//! against its CID.

pub mod cid;
pub mod embedded;
pub mod kubo;
pub mod unixfs;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

pub use cid::Cid;
pub use embedded::EmbeddedStore;
pub use kubo::KuboStore;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("content store I/O at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no content {0} in the store")]
    NotFound(Cid),
    #[error("block {0} does not match its CID: the store is corrupt")]
    Corrupt(Cid),
    #[error(transparent)]
    Node(#[from] unixfs::NodeError),
    #[error(transparent)]
    Cid(#[from] cid::CidError),
    #[error("content over the {limit}-byte limit")]
    TooLarge { limit: usize },
    #[error("cannot reach the IPFS node at {url}: {reason}; is it running?")]
    Unreachable { url: String, reason: String },
    #[error("the IPFS node answered {status}: {body}")]
    Node500 { status: u16, body: String },
    #[error("the IPFS node gave {got} for content whose CID is {expected}; add with --cid-version=1 raw leaves and 256 KiB chunks")]
    Mismatch { expected: Cid, got: Cid },
}

/// Where content lives: the embedded block store or an IPFS node.
pub trait ContentStore: Send + Sync {
    /// Stores (and pins) `content`; returns its CID.
    fn put<'a>(&'a self, content: &'a [u8]) -> BoxFuture<'a, Result<Cid, ContentError>>;
    /// Reads the content `cid` names (at most `limit` bytes), verified against the CID.
    fn get<'a>(
        &'a self,
        cid: &'a Cid,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, ContentError>>;
    /// Keeps `cid` from being collected.
    fn pin<'a>(&'a self, cid: &'a Cid) -> BoxFuture<'a, Result<(), ContentError>>;
}
