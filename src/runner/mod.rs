//! Execution (docs/run-store.md): from a checked plan to a finished apply.
//! An apply ([`apply`]) opens a session ([`session`]: lock, watchdog,
//! runtime, signals), prepares the jobs ([`prepare`], [`job`]) and hands
//! them to the dispatcher, the one owner of all run state, which starts
//! each node instance as a unit through a launcher when its needs are
//! terminal. A unit ([`unit`]) is one instance's Ralph loop of iterations
//! ([`iteration`]), each judged by the success conditions ([`success`]);
//! units report back by [`event`]s. What agents are, how processes run
//! and what is incremental live beside the runner, in `crate::agents`,
//! `crate::process` and `crate::incremental`.

mod apply;
mod build;
mod context;
mod dispatcher;
pub mod error;
pub mod event;
mod group;
mod iteration;
mod job;
pub mod launcher;
mod options;
pub mod outcome;
pub mod prepare;
mod select;
pub mod session;
mod stall;
mod success;
mod success_commands;
pub mod summary;
mod unit;
mod verdict;

pub use apply::apply;
pub use dispatcher::Control;
pub use error::ApplyError;
pub use event::Observer;
pub use options::ApplyOptions;
pub use summary::Summary;
