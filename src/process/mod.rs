//! Processes conductor starts (agents, `stop.command` checks, `[success]`
//! commands) and how they end: each leads its own process group with its
//! streams on files ([`group`]), is handed to the per-apply watchdog
//! process that kills it if conductor dies ([`watchdog`]), is stopped by
//! the apply's stop level with a grace period ([`supervisor`]), and the
//! signals that set that level ([`signals`]). Shell commands run through
//! [`shell`]. Nothing here knows of workflows or runs.

pub mod group;
pub mod shell;
pub mod signals;
pub mod supervisor;
pub mod watchdog;

pub use group::{Spawned, Stdio3, exit_code, resolve};
pub use supervisor::{StopLevel, Supervisor};
