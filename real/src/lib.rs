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
//! - [`events`]: event logs stamped with true time, merged into one history.
//! - [`node`]: the node daemon (`lifeboat node`): the model's node on tokio, with etcd as
//!   the lease store and the real clients for Telegram and the snapshot store.
//! - [`docker`]: the Docker backend: images from scratch, a private network per run,
//!   nodes, etcd and the doubles as containers, real faults.
#![deny(missing_docs)]

pub mod clients;
pub mod docker;
pub mod doubles;
pub mod events;
pub mod hetzner;
pub mod node;
pub mod remote_faults;
pub mod ssh;
pub mod target;
