//! Events: every state change is written to the outbox in the transaction that makes it
//! (`outbox`), then relayed to a bus (`bus`: in-process by default, RabbitMQ in production) and
//! streamed to participants as server-sent events, each seeing only what concerns it.

pub mod bus;
pub mod outbox;
pub mod rabbit;
pub mod rabbit_server;

pub use bus::{Bus, BusError, InProcessBus};
pub use outbox::{Audience, Event, Topic};
