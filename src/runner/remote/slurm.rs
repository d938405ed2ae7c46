//! Owns the Slurm executor (docs/distributed.md), which runs each agent
//! instance's whole Ralph loop as one Slurm job, through `conductor
//! __unit`: what the executor is given, and how a unit is submitted (its
//! spec written, its environment without keys, its `sbatch` arguments).
//! `super::follow` is its launcher: it follows each job to its end.
//! Sub-workflow checks and merge nodes stay on this machine: they are git
//! and shell work on the checkout.

use std::path::PathBuf;
use std::time::Duration;

use super::sbatch::{self, Queue, Submission};
use super::spec::{self, UnitSpec};
use crate::runner::context::Shared;
use crate::runner::job::Job;
use crate::store::ExecutorJob;
use crate::store::layout::TaskDir;

/// How often Slurm is asked about the apply's jobs.
pub(super) const ASK_SLURM: Duration = Duration::from_secs(1);

/// What the Slurm executor is given (`--executor slurm`).
#[derive(Debug)]
pub(crate) struct Slurm {
    exe: PathBuf,
    /// The workflow file and its params, for the workers to plan again.
    file: PathBuf,
    sets: Vec<String>,
    sbatch_args: Vec<String>,
    containment: crate::process::Containment,
    /// `CONDUCTOR_CREDENTIALS`, absolute: the job's folder is its workdir.
    credentials: Option<PathBuf>,
    pub(super) queue: Queue,
}

impl Slurm {
    /// Checks that Slurm answers; the executor, or why not.
    pub(crate) fn new(
        file: PathBuf,
        sets: Vec<String>,
        sbatch_args: Vec<String>,
        containment: crate::process::Containment,
    ) -> Result<Self, sbatch::SlurmError> {
        // A keys file that cannot be used is said now, not by every job
        // after its wait in the queue.
        let credentials = match std::env::var_os(super::credentials::VARIABLE) {
            Some(p) if !p.is_empty() => {
                let path = std::path::absolute(&p).unwrap_or_else(|_| PathBuf::from(&p));
                super::credentials::read(&path).map_err(sbatch::SlurmError::Credentials)?;
                Some(path)
            }
            _ => None,
        };
        sbatch::check()?;
        let exe = std::env::current_exe().map_err(|source| sbatch::SlurmError::Spawn {
            program: "conductor",
            source,
        })?;
        Ok(Self {
            credentials,
            exe,
            file,
            sets,
            sbatch_args,
            containment,
            queue: Queue::new(ASK_SLURM),
        })
    }
}

pub(super) fn record(task: &TaskDir, job: &ExecutorJob) {
    if let Err(e) = job.write(task) {
        tracing::warn!("cannot write {}: {e}", task.executor_job().display());
    }
}

/// Writes the unit's spec and submits it; the job id.
pub(super) async fn submit(
    slurm: &Slurm,
    shared: &Shared,
    job: &Job,
    launch: &crate::runner::unit::Launch,
    task: &TaskDir,
) -> Result<String, String> {
    let node = &shared.program.node(job.node).id;
    let unit = UnitSpec {
        version: spec::VERSION,
        file: slurm.file.clone(),
        sets: slurm.sets.clone(),
        root: shared.runs_root.clone(),
        apply_id: shared.apply_id.clone(),
        apply_start: shared.apply_start.to_string(),
        continued: shared.continued,
        key: job.key.to_string(),
        node: node.clone(),
        item: job.item.clone(),
        round: launch.round,
        resume: launch.resume,
        needs: serde_json::to_value(&launch.needs)
            .map_err(|e| format!("cannot write `needs` for the unit: {e}"))?,
        group_previous: (!launch.group_previous.is_undefined())
            .then(|| serde_json::to_value(&launch.group_previous))
            .transpose()
            .map_err(|e| format!("cannot write `previous` for the unit: {e}"))?,
        fingerprint: (*job.fingerprint).clone(),
        grace: shared.supervisor.grace(),
        containment: slurm.containment,
        budget_usd: shared.limits.budget_usd,
        isolation: job.isolation.as_deref().cloned(),
        merge: launch.merge.clone(),
    };
    unit.write(&task.unit_spec())
        .map_err(|e| format!("cannot write {}: {e}", task.unit_spec().display()))?;
    // The job gets the submitter's environment, but never its keys: Slurm
    // keeps a job's environment in its state files (docs/distributed.md,
    // "Keys").
    let mut env: Vec<(String, String)> = shared
        .base_env
        .iter()
        .filter(|(k, _)| !shared.secrets.contains(k) && k != super::credentials::VARIABLE)
        .cloned()
        .collect();
    if let Some(path) = &slurm.credentials {
        env.push((
            super::credentials::VARIABLE.to_string(),
            path.display().to_string(),
        ));
    }
    // The workflow's `[executor]`, the node's over it, then `--sbatch-arg`
    // (Slurm takes the last of a repeated option).
    let mut extra = shared.program.sbatch_args(job.node);
    extra.extend(slurm.sbatch_args.iter().cloned());
    let id = sbatch::submit(&Submission {
        name: &format!("conductor:{}", job.key),
        exe: &slurm.exe,
        spec: &task.unit_spec(),
        workdir: &job.workdir,
        output: task.path().join("slurm-%j.out"),
        extra: &extra,
        env,
    })
    .await
    .map_err(|e| format!("cannot submit `{}` to Slurm: {e}", job.key))?;
    record(
        task,
        &ExecutorJob {
            executor: "slurm".into(),
            job_id: id.clone(),
            node: None,
        },
    );
    Ok(id)
}
