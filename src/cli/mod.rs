//! Owns the command line: argument parsing (clap), dispatch to the
//! subcommands, how diagnostics and results are printed, and the mapping of
//! outcomes to exit codes. Nothing below this module knows about clap.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line is where conductor prints"
)]

mod apply;
mod args;
mod bus_cmd;
mod check;
mod fake_agent;
mod gc;
mod logs;
pub(crate) mod render;
mod run;
mod serve;
mod status;
mod watch;

pub use args::{Cli, Command};
pub use run::run;
