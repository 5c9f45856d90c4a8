//! The real backend: the live AAA drill on Hetzner Cloud servers, driven over SSH.
//!
//! Why it is split this way:
//! - [`cloud`]: renting and deleting servers (labels, prices, host keys in user data),
//!   plain functions over the Hetzner client, so `lifeboat cleanup --backend real` and
//!   the backend share them;
//! - [`backend`]: the drill runner's `Backend` over those servers: every step is a
//!   command of the target profile ([`crate::target`]) run over SSH ([`crate::ssh`]),
//!   every network or clock fault a script with a dead-man's switch
//!   ([`crate::remote_faults`]);
//! - [`plan`]: `--dry-run`, the same calls and commands printed in order, touching
//!   nothing;
//! - [`redact`]: the run's secrets, scrubbed from everything it prints or writes.

pub mod backend;
pub mod cloud;
pub mod plan;
pub mod redact;
