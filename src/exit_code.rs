//! Owns conductor's exit codes. They are part of its interface (CI jobs branch
//! on them) and are documented in `docs/exit-codes.md`; nothing else in the
//! code base picks a process exit code.

/// Everything asked for was done.
pub(crate) const OK: u8 = 0;
/// A node failed, or a `[success]` command failed.
pub(crate) const FAILED: u8 = 1;
/// The invocation or the workflow is invalid; nothing ran.
pub(crate) const INVALID: u8 = 2;
/// The environment is wrong: an agent binary is missing, the runs root is not writable.
pub(crate) const ENVIRONMENT: u8 = 3;
/// Interrupted by Ctrl-C (or SIGHUP).
pub(crate) const INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM (gracefully, like a first Ctrl-C).
pub(crate) const TERMINATED: u8 = 143;
