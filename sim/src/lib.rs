//! lifeboat's deterministic worlds over the shared model.
//!
//! Code map:
//! - [`world`]: the fast engine, an event-driven world (the default).
//! - [`fuzz`]: fuzz cases (fault plans) as scenarios, run through the drill runner.
//! - [`backend`]: the drill runner's `Backend` over either engine ([`backend::Engine`]).
//! - [`measure`]: takeover-latency samples and a bare turmoil world, for benches and tests.
//! - [`tradeoff`]: the lease-TTL sweep: crash takeover against step-downs of a healthy leader.
//! - [`turmoil_engine`]: the same world as turmoil hosts talking TCP, to cross-check the fast one.
//! - `shared` (private): what both engines share, so they cannot drift apart.
#![deny(missing_docs)]

pub mod backend;
pub mod fuzz;
pub mod measure;
mod shared;
pub mod tradeoff;
pub mod turmoil_engine;
pub mod world;
