//! One module per `lifeboat` subcommand; each exposes its clap arguments and a `run`.

pub mod cleanup;
pub mod drill;
pub mod fuzz;
pub mod node;
pub mod real;
pub mod serve;
pub mod snapshot;
