//! Owns execution (docs/run-store.md): from a checked plan to a finished
//! apply. It resolves the runs root and checks the environment before
//! anything starts, runs the dispatcher on a tokio runtime with the stop
//! signals wired in, runs the `[success]` commands, and returns the summary.

mod context;
mod dispatcher;
pub mod event;
mod group;
mod iteration;
mod job;
pub mod outcome;
pub mod prepare;
mod select;
pub mod session;
mod stall;
mod success;
mod success_commands;
pub mod summary;
mod unit;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::incremental::prior::UP_TO_DATE;
pub use dispatcher::Control;
pub use event::Observer;
pub use summary::Summary;

use crate::compile::Program;
use crate::plan::Plan;
use context::Shared;

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

/// An apply that could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Bad invocation (`--only` names nothing): exit 2.
    #[error("{0}")]
    Invalid(String),
    /// The machine is not ready (runs root not writable, agent missing): exit 3.
    #[error("{0}")]
    Environment(String),
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
    let mut inputs = crate::incremental::inputs::InputHasher::new(vec![session.root.clone()]);
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

/// The workflow's latest apply, when it did not finish (docs/watch.md):
/// its id and start, which name its task folders.
fn unfinished(index: &crate::store::index::Index) -> Option<(String, jiff::Timestamp)> {
    let latest = index.latest.as_ref()?;
    if latest.status.as_deref() == Some("done") {
        return None;
    }
    let start = latest.apply_start.parse().ok()?;
    Some((latest.apply_id.clone(), start))
}

/// `WORKFLOW_STOP` on the project bus.
fn record_stop(shared: &Shared, summary: &Summary) {
    let path = shared.project_dir.join("PROJECT-MESSAGE-BUS.md");
    let Ok(mut bus) = crate::bus::BusWriter::open(&path) else {
        return;
    };
    let meta = [
        ("apply_id", shared.apply_id.clone()),
        ("workflow", shared.workflow.clone()),
        ("status", summary.status.clone()),
        ("exit_code", summary.exit_code.to_string()),
        ("done", summary.counts.done.to_string()),
        ("failed", summary.counts.failed.to_string()),
        ("skipped", summary.counts.skipped.to_string()),
        ("duration_ms", summary.duration_ms.to_string()),
        ("cost_usd", format!("{:.6}", summary.usage.cost_usd)),
    ];
    let msg = crate::bus::NewMessage {
        kind: "WORKFLOW_STOP".into(),
        project_id: shared.project.clone(),
        meta: meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        body: format!(
            "workflow {} {}: {} done, {} failed, {} skipped",
            shared.workflow,
            summary.status,
            summary.counts.done,
            summary.counts.failed,
            summary.counts.skipped
        ),
        ..crate::bus::NewMessage::default()
    };
    if let Err(e) = bus.append(&msg) {
        tracing::warn!("cannot post WORKFLOW_STOP: {e}");
    }
}

/// Each running agent holds a few descriptors in conductor (its task bus,
/// its process handle); the usual soft limit of 1,024 would cap an apply at a
/// few hundred agents, so it is raised to the hard limit.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!("cannot raise the descriptor limit: {e}");
        }
    }
}

/// Creates the root and project folders, and `.conductor/.gitignore` for
/// the default root; any failure is an environment error.
fn prepare_root(root: &Path, project_dir: &Path, explicit: bool) -> Result<(), ApplyError> {
    let fail = |what: &Path, e: std::io::Error| {
        ApplyError::Environment(format!(
            "the runs root is not writable: cannot create {}: {e}\n  help: pass a writable folder with --root, or set CONDUCTOR_ROOT",
            what.display()
        ))
    };
    // Whether files can be written in it is found by the first one written
    // (the apply's registration), not by a probe: a file created and deleted
    // costs a millisecond on some file systems.
    std::fs::create_dir_all(project_dir).map_err(|e| fail(project_dir, e))?;
    if !explicit && let Some(dot) = root.parent().filter(|p| p.ends_with(".conductor")) {
        let ignore = dot.join(".gitignore");
        if !ignore.exists() {
            let _ = std::fs::write(&ignore, "*\n");
        }
    }
    Ok(())
}

/// PATH for agents: conductor's own folder first, so `conductor bus post` works.
pub(super) fn agent_path(exe: &Path) -> String {
    let own = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(own).chain(std::env::split_paths(&rest));
    std::env::join_paths(dirs).map_or_else(
        |_| rest.to_string_lossy().into_owned(),
        |p| p.to_string_lossy().into_owned(),
    )
}
