//! lifeboat's deterministic worlds over the shared model.
//!
//! Code map:
//! - [`world`]: the fast engine, an event-driven world (the default for fuzzing).
#![deny(missing_docs)]

pub mod world;
