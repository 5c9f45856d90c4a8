//! The `lifeboat` command's library: one module per command, plus the evidence bundle and
//! report writers that turn a drill outcome into files.
#![deny(missing_docs)]

pub mod commands;
pub mod evidence;
pub mod input;
pub mod report;
