//! Processes conductor starts (agents, `stop.command` checks, `[success]`
//! commands) and how they end: each is started by the per-apply keeper
//! ([`keeper`]), which contains it and everything it starts (a cgroup per
//! run, [`cgroup`], or its child subreaper and the process tree,
//! [`tree`]) and ends them all when conductor goes; each is stopped by the
//! apply's stop level with a grace period ([`supervisor`]), set by the
//! signals ([`signals`]). Shell commands run through [`shell`]; programs
//! are found on PATH and given their streams by [`group`]. Nothing here
//! knows of workflows or runs.

pub(crate) mod cgroup;
pub(crate) mod group;
pub(crate) mod keeper;
pub(crate) mod shell;
pub(crate) mod signals;
pub(crate) mod supervisor;
pub(crate) mod tree;

pub(crate) use group::{Stdio3, resolve};
pub(crate) use keeper::{Contained, Containment};
pub(crate) use supervisor::{StopLevel, Supervisor};
