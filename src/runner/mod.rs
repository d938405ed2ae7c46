//! Execution (docs/run-store.md): from a checked plan to a finished apply.
//! An apply ([`apply`](mod@apply)) opens a session ([`session`]: lock, keeper,
//! runtime, signals), prepares the jobs ([`prepare`], [`job`]) and hands
//! them to the dispatcher, the one owner of all run state, which starts
//! each node instance as a unit through a launcher when its needs are
//! terminal. A unit ([`unit`](mod@unit)) is one instance's Ralph loop of iterations
//! ([`iteration`]), each judged by the success conditions ([`success`]);
//! units report back by [`event`]s. What agents are, how processes run
//! and what is incremental live beside the runner, in `crate::agents`,
//! `crate::process` and `crate::incremental`.

mod apply;
mod build;
mod context;
mod dispatcher;
pub(crate) mod edits;
pub(crate) mod error;
pub(crate) mod event;
mod fan_in;
mod group;
mod isolated;
mod iteration;
mod job;
pub(crate) mod launcher;
pub(crate) mod merge;
mod notify;
mod options;
pub(crate) mod outcome;
pub(crate) mod prepare;
mod remote;
mod select;
pub(crate) mod session;
mod stall;
mod success;
mod success_commands;
pub(crate) mod summary;
mod unit;
pub(crate) mod verdict;
pub(crate) mod why;

pub(crate) use apply::apply;
pub(crate) use dispatcher::Control;
pub(crate) use error::ApplyError;
pub(crate) use event::Observer;
pub(crate) use options::{ApplyOptions, Executor};
pub(crate) use remote::{Cluster, kubernetes_jobs, run_unit, shell_line, submissions};
