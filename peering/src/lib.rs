//! Peering: after a purchase the consumer reaches the provider directly, never through the
//! broker. The broker mints a credential per contract (`envelope`), sealed so only the consumer
//! can read it (`seal`); the provider's agent learns what to admit (`admission`) and both ends
//! talk over a mutually authenticated, encrypted channel whose keys are the participants' own
//! did:keys (`channel`, Noise IK).

pub mod admission;
pub mod channel;
pub mod envelope;
pub mod probe;
pub mod replay;
pub mod seal;

pub use admission::{Admission, AdmissionTable, Refusal};
pub use envelope::{Credential, CredentialKind, SignedParties, ENVELOPE_VERSION};
pub use replay::{ReplayGuard, Stale};
pub use seal::{open, seal, SealedCredential};
