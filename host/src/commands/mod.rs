//! The CLI's subcommands, one struct each with an `execute` method.

pub mod parse;
pub mod serve;
