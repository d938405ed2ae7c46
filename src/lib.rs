//! Conductor: a declarative workflow engine for AI coding agents.
//!
//! The front end runs in stages that never reach back (see
//! `docs/architecture.md`): `syntax` lowers TOML or KDL text to a spanned
//! tree, `decode` reads it into the typed `model`, [`compile`] loads
//! sub-workflows and checks the cross references, and [`plan`] expands it
//! into node instances on a petgraph DAG. `runner` runs a plan: its
//! dispatcher starts each instance's Ralph loop through a launcher, with
//! what differs by agent kind in `agents`, processes in `process` and what
//! makes applying incremental in `incremental`; everything is recorded on
//! the file [`bus`] and in the run [`store`].
//!
//! The public surface is what the binary, the tests, the benchmarks and
//! the fuzz targets use; everything else is the crate's own.

pub(crate) mod agents;
pub mod bus;
pub mod cli;
pub(crate) mod clock;
pub mod compile;
pub(crate) mod decode;
pub(crate) mod diagnostic;
pub(crate) mod exit_code;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub(crate) mod incremental;
pub(crate) mod isolation;
pub(crate) mod load;
pub(crate) mod model;
pub(crate) mod paths;
pub mod plan;
pub mod preamble;
pub(crate) mod private;
pub(crate) mod process;
pub(crate) mod prompt;
pub(crate) mod report;
pub(crate) mod runner;
pub(crate) mod schema;
pub(crate) mod secrets;
pub(crate) mod serve;
pub(crate) mod source;
pub(crate) mod stop_reason;
pub mod store;
pub(crate) mod syntax;
pub(crate) mod view;
pub(crate) mod walk;
pub(crate) mod watch;
pub(crate) mod writes;
