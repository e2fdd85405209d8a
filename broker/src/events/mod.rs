//! Events: every state change is written to the outbox in the transaction that makes it
//! (`outbox`). One reader per broker process (`hub`) follows the outbox and fans each event out to
//! every subscriber in the process (event streams, the purchase driver); the relay (`relay`)
//! publishes them to an external bus (RabbitMQ, `rabbit`) when one is configured.

pub mod hub;
pub mod outbox;
pub mod rabbit;
pub mod relay;

pub use hub::EventHub;
pub use outbox::{Audience, Pending, StoredEvent};
pub use relay::{Bus, BusError};
