//! Conductor: a declarative workflow engine for AI coding agents.
//!
//! The front end runs in stages that never reach back (see
//! `docs/architecture.md`): [`syntax`] lowers TOML or KDL text to a spanned
//! tree, [`decode`] reads it into the typed [`model`], [`compile`] loads
//! sub-workflows and checks the cross references, and [`plan`] expands it into
//! node instances on a petgraph DAG. [`prompt`] renders templates for both.
//! Every problem is a [`diagnostic::Diagnostic`] with a stable code and a span.

pub mod agents;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod compile;
pub mod decode;
pub mod diagnostic;
pub mod exit_code;
pub mod fuzzing;
pub mod incremental;
pub mod load;
pub mod model;
pub mod paths;
pub mod plan;
pub mod preamble;
pub mod process;
pub mod prompt;
pub mod report;
pub mod runner;
pub mod schema;
pub mod secrets;
pub mod source;
pub mod stop_reason;
pub mod store;
pub mod syntax;
pub mod walk;
pub mod watch;
