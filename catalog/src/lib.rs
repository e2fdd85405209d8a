//! Mercato's catalog: the offer and plan model for every resource class, its validation and
//! signatures, conversion to and from FLUIDOS REAR flavors, storage, and the query engine.

pub mod fluidos;
#[cfg(feature = "store")]
pub mod follow;
pub mod index;
pub mod model;
pub mod money;
pub mod params;
pub mod provider_config;
pub mod quantity;
pub mod query;
pub mod row;
#[cfg(feature = "store")]
pub mod store;
pub mod validate;

pub use index::{Hit, Index, Page};
pub use model::{Offer, Plan, ResourceClass};
pub use money::Credits;
pub use query::{Query, SortKey};
pub use validate::{parse_offer, validate, OfferError};
