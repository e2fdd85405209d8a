//! Contract tests on a real development chain (Anvil), through the Rust bindings: every
//! function's success and revert paths, access control, and token conservation.

mod common;

mod billing;
mod credentials;
mod invariant;
mod marketplace;
mod registry;
mod settlement;
mod token;
mod trust;
