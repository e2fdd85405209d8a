//! Mercato's content store. Configurations and contract documents are addressed by the CIDs IPFS
//! gives them (`ipfs add --cid-version=1`: raw leaves, 256 KiB chunks, balanced DAG), so a CID
//! computed here, by the embedded store or by Kubo is the same, and content read back is checked
//! against its CID.

pub mod cid;
pub mod embedded;
pub mod unixfs;

pub use cid::Cid;
pub use embedded::EmbeddedStore;
