//! One module per `lifeboat` subcommand; each exposes its clap arguments and a `run`.

pub mod drill;
pub mod fuzz;
pub mod serve;
pub mod snapshot;
