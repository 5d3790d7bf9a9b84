//! What every API client inside Rudder shares: the controllers, the
//! scheduler and the node agent record events the same way, elect leaders
//! the same way, and follow a watch's relists the same way.

pub mod events;
pub mod expectations;
pub mod informers;
pub mod leader;
pub mod metrics;
pub mod relist;
pub mod selectors;
