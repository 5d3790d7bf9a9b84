//! What the API server knows about Kubernetes objects, without I/O: the
//! resource registry ([`registry`]), validation with Kubernetes' messages
//! ([`validation`]), label and field selectors ([`selector`]) and `Status`
//! errors ([`status`]).
//!
//! Objects are handled as JSON (`serde_json::Value`) wherever that is
//! enough (storage, selectors, metadata); typed handling comes per kind
//! where validation and defaulting need it.

pub mod conversion;
pub mod cron;
pub mod defaults;
pub mod managed;
pub mod metrics;
pub mod net;
pub mod patch;
pub mod protobuf;
pub mod quantity;
pub mod registry;
pub mod selector;
pub mod status;
pub mod table;
pub mod time;
pub mod validation;

pub use registry::Resource;
pub use status::{Cause, Details, StatusError};
