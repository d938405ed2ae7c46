//! Owns one `conductor apply` from a checked plan to its summary: the runs
//! root prepared and the environment checked before anything starts (exit
//! 3 otherwise), the session opened, the jobs prepared and run, and the
//! apply's closing record (`WORKFLOW_STOP`) on the project bus.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::ApplyError;
use super::event::Observer;
use super::summary::Summary;
use super::{prepare, session};
use crate::compile::Program;
use crate::plan::Plan;

/// How an apply runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// `--root`, relative to the current directory.
    pub root: Option<PathBuf>,
    pub max_parallel: usize,
    pub only: Vec<String>,
    pub fail_fast: bool,
    /// SIGTERM-to-SIGKILL grace period for agents.
    pub grace: Duration,
    /// `--budget-usd`: caps the whole apply, below `[limits] budget_usd`.
    pub budget_usd: Option<f64>,
    /// `--force[=NODE,..]`: `Some(empty)` re-runs everything.
    pub force: Option<Vec<String>>,
    /// `--fresh`: a new apply even when the last one did not finish.
    pub fresh: bool,
}

/// The runs root of `program` (docs/run-store.md): `--root`, else
/// `CONDUCTOR_ROOT`, else the workflow's `root`, else `.conductor/runs`.
pub fn runs_root(program: &Program, flag: Option<&Path>) -> PathBuf {
    crate::store::layout::runs_root(flag, program.declared_root())
}

/// Runs `plan`; `observer` sees every event as it happens.
pub fn apply(
    program: Program,
    plan: &Plan,
    options: &ApplyOptions,
    observer: &mut dyn Observer,
) -> Result<Summary, ApplyError> {
    let mut session = match session::Session::open(&program, options) {
        Ok(s) => s,
        Err(e) => {
            // A bad invocation is reported as such even when the
            // environment is wrong too.
            prepare::check_invocation(&program, plan, options)?;
            return Err(e);
        }
    };
    let mut inputs = crate::incremental::inputs::InputHasher::new(session.root.clone());
    let prepared = match session.prepare(&program, plan, &mut inputs) {
        Ok(p) => p,
        Err(e) => {
            session.close();
            return Err(e);
        }
    };
    let summary = session.run(
        Arc::new(program),
        Arc::new(plan.success.clone()),
        prepared,
        observer,
        None,
        None,
    );
    session.close();
    summary
}
