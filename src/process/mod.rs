//! Processes conductor starts (agents, `stop.command` checks, `[success]`
//! commands) and how they end: each leads its own process group with its
//! streams on files ([`group`]), is handed to the per-apply watchdog
//! process that kills it if conductor dies ([`watchdog`]), is stopped by
//! the apply's stop level with a grace period ([`supervisor`]), and the
//! signals that set that level ([`signals`]). Shell commands run through
//! [`shell`]. Nothing here knows of workflows or runs.

pub(crate) mod group;
pub(crate) mod shell;
pub(crate) mod signals;
pub(crate) mod supervisor;
pub(crate) mod watchdog;

pub(crate) use group::{Spawned, Stdio3, exit_code, resolve};
pub(crate) use supervisor::{StopLevel, Supervisor};
