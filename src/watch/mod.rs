//! Owns `conductor watch`'s re-planning (docs/watch.md): a
//! thread that waits for file bursts, recompiles the workflow, builds and
//! fingerprints the jobs, and hands the new plan to the apply that runs (or
//! to the next one). A burst that only touches inputs while agents are
//! running is their own work and re-plans nothing; a workflow that no
//! longer compiles prints its diagnostics and leaves the last good plan in
//! force.

pub(crate) mod files;
mod replan;

pub(crate) use replan::{Notice, Replanner, watch_set};
