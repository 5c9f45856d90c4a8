//! lifeboat's shared model: pure, deterministic, no I/O, no runtime, no wall clock.
//!
//! Code map:
//! - [`time`], [`ids`]: milliseconds and names.
//! - [`limits`]: the bounds of every value the input formats accept; [`locate`]: where a
//!   value sits in a TOML text.
//! - [`profile`]: the protocols (`opentrident-v1`, `fenced`) and their timings.
//! - [`node`]: the node state machine; steps from inputs to effects.
//! - [`proto`]: requests and responses between nodes and services.
//! - [`lease`]: the lease store (etcd semantics) and OpenTrident's lock file.
//! - [`telegram`]: Telegram Bot API semantics (offsets, long polls, 409).
//! - [`snapshot`], [`v1`], [`bootstrap`]: the signed snapshot chain, OpenTrident's v1
//!   format, the bootstrap manifest.
//! - [`history`], [`check`]: observable events and the eight invariant checkers.
//! - [`backend`], [`scenario`], [`drill`]: the backend trait, scenario files and the
//!   drill runner that drives any backend.
#![deny(missing_docs)]

/// `mutant!(holder, Name)`: whether mutant `Name` is active in `holder` (anything with a
/// `mutant: Option<Mutant>` field). Without the `mutants` feature it is `false`, so every
/// mutant site compiles away.
macro_rules! mutant {
    ($holder:expr, $name:ident) => {{
        #[cfg(feature = "mutants")]
        let active = $holder.mutant == Some($crate::mutant::Mutant::$name);
        #[cfg(not(feature = "mutants"))]
        let active = {
            let _ = &$holder;
            false
        };
        active
    }};
}

pub mod backend;
pub mod bootstrap;
pub mod check;
pub mod drill;
pub mod fault;
pub mod history;
pub mod ids;
pub mod lease;
pub mod limits;
pub mod locate;
#[cfg(feature = "mutants")]
pub mod mutant;
pub mod node;
pub mod profile;
pub mod proto;
pub mod scenario;
pub mod snapshot;
pub mod store;
pub mod telegram;
pub mod time;
pub mod v1;

pub use ids::{Endpoint, NodeId};
pub use time::Millis;
