//! lifeboat on real machines: what runs outside the simulator.
//!
//! The model (`lifeboat-model`) is pure; this crate is where lifeboat meets real
//! networks, real processes and the three outside services.
//!
//! Code map:
//! - [`clients`]: the HTTP clients for the Telegram Bot API, GitHub Releases (the snapshot
//!   store) and Hetzner Cloud; each takes a base URL so it runs against a double as well.
//! - [`doubles`]: local doubles of those three services, speaking their documented HTTP
//!   and JSON, for rehearsals (`lifeboat serve …`) and tests.
#![deny(missing_docs)]

pub mod clients;
pub mod doubles;
