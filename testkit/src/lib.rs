//! Test fixtures and benchmark data, kept out of the libraries: throwaway servers
//! (`pg_server`, `rabbit_server`, `ipfs_daemon`), a realistic synthetic catalog (`synth`),
//! participants and contracts on a development chain signed as the SDK signs them (`dev`), and
//! `eventually`, the one way tests wait for a condition.

pub mod dev;
pub mod ipfs_daemon;
pub mod pg_server;
pub mod rabbit_server;
pub mod synth;
mod wait;

pub use wait::{eventually, eventually_some, Patience};
