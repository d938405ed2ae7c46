//! Owns how an apply runs, as the command line asks: the runs root, the
//! caps, what `--only`, `--force` and `--fresh` select, `--fail-fast`, and
//! the agents' grace period and how they are contained.

use std::path::PathBuf;
use std::time::Duration;

/// How an apply runs.
#[derive(Debug, Clone)]
pub(crate) struct ApplyOptions {
    /// `--root`, relative to the current directory.
    pub root: Option<PathBuf>,
    /// The workflow file applied, recorded so that readers of the run
    /// store (`conductor serve`) can plan it again.
    pub file: Option<PathBuf>,
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
    /// `--containment`: how the keeper contains runs.
    pub containment: crate::process::Containment,
    /// `--executor`: where each instance's loop runs.
    pub executor: Executor,
    /// `--set` params, as given: a unit run elsewhere plans the workflow
    /// again with them.
    pub sets: Vec<String>,
}

/// Where each instance's Ralph loop runs (docs/distributed.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Executor {
    /// As tasks of this process; agents are its children.
    #[default]
    Local,
    /// As Slurm jobs, each running `conductor __unit`; `sbatch_args` are
    /// given to every `sbatch` (`--sbatch-arg`).
    Slurm { sbatch_args: Vec<String> },
}
