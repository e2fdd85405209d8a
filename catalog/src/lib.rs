//! Mercato's catalog: the offer and plan model for every resource class, its validation and
//! signatures, conversion to and from FLUIDOS REAR flavors, storage, and the query engine.

pub mod fluidos;
pub mod identity;
pub mod model;
pub mod quantity;
pub mod synth;
pub mod validate;

pub use model::{Offer, Plan, ResourceClass};
pub use validate::{parse_offer, validate, OfferError};
