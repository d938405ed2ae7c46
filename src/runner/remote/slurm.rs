//! Owns the Slurm executor (docs/distributed.md): a [`Launcher`] that runs
//! each agent instance's whole Ralph loop as one Slurm job, through
//! `conductor __unit`, and follows it from the dispatcher: it writes the
//! unit's spec, submits it (or, when a dispatcher killed before finds the
//! job still running, re-attaches to it), hands on the events the unit
//! appends, counts their cost to the apply's budget, cancels the job when
//! the apply stops, a watch invalidates it or a person stops it, and ends
//! with the unit's outcome, or `worker_lost` when the job ended without
//! one. Sub-workflow checks and merge nodes stay on this machine: they
//! are git and shell work on the checkout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sbatch::{self, Queue, Submission};
use super::spec::{self, UnitSpec};
use super::wire::{Line, LineReader, read_outcome};
use crate::process::StopLevel;
use crate::runner::context::Shared;
use crate::runner::job::Job;
use crate::runner::launcher::{GroupCheck, Launcher, Local, MergeStart, UnitFuture, UnitStart};
use crate::runner::outcome::{Outcome, Status};
use crate::stop_reason::StopReason;
use crate::store::ExecutorJob;
use crate::store::layout::{ProjectDir, TaskDir};

/// How often a unit's files are looked at.
const POLL: Duration = Duration::from_millis(200);
/// How often Slurm is asked about the apply's jobs.
const ASK_SLURM: Duration = Duration::from_secs(1);
/// What a unit gets past the grace period to write its outcome after a
/// gentle cancel, before its whole job is cancelled.
const MARGIN: Duration = Duration::from_secs(5);

/// What the Slurm executor is given (`--executor slurm`).
#[derive(Debug)]
pub(crate) struct Slurm {
    exe: PathBuf,
    /// The workflow file and its params, for the workers to plan again.
    file: PathBuf,
    sets: Vec<String>,
    sbatch_args: Vec<String>,
    containment: crate::process::Containment,
    queue: Queue,
}

impl Slurm {
    /// Checks that Slurm answers; the executor, or why not.
    pub(crate) fn new(
        file: PathBuf,
        sets: Vec<String>,
        sbatch_args: Vec<String>,
        containment: crate::process::Containment,
    ) -> Result<Self, sbatch::SlurmError> {
        sbatch::check()?;
        let exe = std::env::current_exe().map_err(|source| sbatch::SlurmError::Spawn {
            program: "conductor",
            source,
        })?;
        Ok(Self {
            exe,
            file,
            sets,
            sbatch_args,
            containment,
            queue: Queue::new(ASK_SLURM),
        })
    }
}

impl Launcher for Arc<Slurm> {
    fn unit(&self, start: UnitStart) -> UnitFuture {
        let slurm = Arc::clone(self);
        Box::pin(async move {
            let task = TaskDir::at(start.shared.project_dir.join(crate::runner::unit::task_id(
                &start.shared,
                &start.job,
                start.launch.round,
            )));
            let mut out = follow(slurm, start).await;
            out.job = ExecutorJob::read(&task).map(Box::new);
            out
        })
    }

    fn group(&self, check: GroupCheck) -> UnitFuture {
        Local.group(check)
    }

    fn merge(&self, start: MergeStart) -> UnitFuture {
        Local.merge(start)
    }
}

/// Why the dispatcher cancelled a job.
#[derive(Debug, Clone)]
struct Cancelled {
    reason: StopReason,
    at: Instant,
    hard: bool,
}

async fn follow(slurm: Arc<Slurm>, start: UnitStart) -> Outcome {
    let UnitStart {
        shared,
        job,
        launch,
        events,
        ..
    } = start;
    let task_id = crate::runner::unit::task_id(&shared, &job, launch.round);
    let task = TaskDir::at(shared.project_dir.join(&task_id));
    let ended = |reason: StopReason, error: String| Outcome {
        task_id: Some(task_id.clone()),
        task_dir: Some(task.path().to_path_buf()),
        error: Some(error),
        ..Outcome::ended(Status::Failed, reason)
    };
    if let Err(e) = crate::private::create_dir_all(task.path()) {
        return ended(
            StopReason::StoreError,
            format!("cannot create {}: {e}", task.path().display()),
        );
    }
    // A job a dispatcher killed before left running: followed, not
    // submitted again.
    let running = match ExecutorJob::read(&task) {
        Some(r) if launch.resume => match slurm.queue.job(&r.job_id, Instant::now()).await {
            Ok(Some(_)) => Some(r.job_id),
            _ => None,
        },
        _ => None,
    };
    let submitted = Instant::now();
    let (job_id, mut lines) = if let Some(id) = running {
        (id, LineReader::at_end(task.unit_events()))
    } else {
        if launch.resume
            && let Some(Ok(out)) = read_outcome(&task.unit_outcome())
            && !out.stop_reason.is_interruption()
        {
            // It ended while no dispatcher followed it. (One that was
            // stopped is what is being resumed.)
            return finish(out, &job, &task);
        }
        for stale in [task.unit_outcome(), task.unit_events(), task.executor_job()] {
            let _ = std::fs::remove_file(stale);
        }
        match submit(&slurm, &shared, &job, &launch, &task).await {
            Ok(id) => (id, LineReader::new(task.unit_events())),
            Err(why) => return ended(StopReason::InternalError, why),
        }
    };
    tracing::debug!("{} runs as Slurm job {job_id}", job.key);
    let mut stop = shared.supervisor.subscribe();
    // Until the session's stop signal is gone (then nothing more stops).
    let mut watching = true;
    let mut cancelled: Option<Cancelled> = None;
    let mut node_known = false;
    let mut asked = Instant::now();
    loop {
        let wanted = tokio::select! {
            () = tokio::time::sleep(POLL) => None,
            changed = stop.changed(), if watching => match changed.map(|()| *stop.borrow()) {
                Err(_) => {
                    watching = false;
                    None
                }
                Ok(StopLevel::Running) => None,
                Ok(StopLevel::Graceful) => Some((StopReason::Interrupted, false)),
                Ok(StopLevel::Now) => Some((StopReason::Interrupted, true)),
            },
            () = launch.cancel.cancelled(), if cancelled.is_none() => Some((StopReason::Invalidated, false)),
            () = launch.stopped.cancelled(), if cancelled.is_none() => Some((StopReason::Stopped, false)),
        };
        if let Some((reason, asked_hard)) = wanted
            && cancelled.as_ref().is_none_or(|c| asked_hard && !c.hard)
        {
            // A job still waiting for a node has no unit to stop gently:
            // it is taken out of the queue at once.
            let pending = matches!(
                slurm.queue.job(&job_id, submitted).await,
                Ok(Some(q)) if q.state == "PENDING"
            );
            let mut hard = asked_hard || pending;
            if let Err(e) = sbatch::cancel(&job_id, !hard).await {
                tracing::warn!("cannot stop Slurm job {job_id} gently: {e}");
                if !hard {
                    hard = true;
                    if let Err(e) = sbatch::cancel(&job_id, false).await {
                        tracing::warn!("cannot cancel Slurm job {job_id}: {e}");
                    }
                }
            }
            cancelled = Some(Cancelled {
                reason,
                at: Instant::now(),
                hard,
            });
        }
        forward(&mut lines, &shared, &job, &events);
        if let Some(read) = read_outcome(&task.unit_outcome()) {
            forward(&mut lines, &shared, &job, &events);
            return match read {
                Ok(mut out) => {
                    if out.stop_reason == StopReason::Interrupted {
                        // Stopped by SIGTERM: this dispatcher's cancel, for
                        // its reason, or Slurm's own (a node going down, a
                        // time limit, `scancel` from outside).
                        match &cancelled {
                            Some(c) => out.stop_reason = c.reason.clone(),
                            None => {
                                out.stop_reason = StopReason::WorkerLost;
                                out.error = Some(format!(
                                    "Slurm stopped job {job_id} (its node went down, its time limit, or `scancel` from outside)"
                                ));
                            }
                        }
                    }
                    finish(out, &job, &task)
                }
                Err(e) => ended(
                    StopReason::InternalError,
                    format!("{} cannot be read: {e}", task.unit_outcome().display()),
                ),
            };
        }
        if let Some(c) = &mut cancelled
            && !c.hard
            && c.at.elapsed() > shared.supervisor.grace() + MARGIN
        {
            if let Err(e) = sbatch::cancel(&job_id, false).await {
                tracing::warn!("cannot cancel Slurm job {job_id}: {e}");
            }
            c.hard = true;
        }
        if asked.elapsed() < ASK_SLURM {
            continue;
        }
        asked = Instant::now();
        match slurm.queue.job(&job_id, submitted).await {
            Ok(Some(q)) => {
                if !node_known && !q.node.is_empty() && q.state == "RUNNING" {
                    node_known = true;
                    record(
                        &task,
                        &ExecutorJob {
                            executor: "slurm".into(),
                            job_id: job_id.clone(),
                            node: Some(q.node),
                        },
                    );
                }
            }
            Ok(None) => {
                // Gone from the queue: its outcome may have been written
                // just before; looked for once more.
                if let Some(Ok(out)) = read_outcome(&task.unit_outcome()) {
                    forward(&mut lines, &shared, &job, &events);
                    return finish(out, &job, &task);
                }
                forward(&mut lines, &shared, &job, &events);
                return match cancelled {
                    Some(c) => ended(
                        c.reason,
                        format!(
                            "Slurm job {job_id} was cancelled before it could say how it ended"
                        ),
                    ),
                    None => ended(
                        StopReason::WorkerLost,
                        format!(
                            "Slurm job {job_id} ended without the unit's outcome (its node went down, or it was cancelled from outside); see {}",
                            task.path().join(format!("slurm-{job_id}.out")).display()
                        ),
                    ),
                };
            }
            Err(e) => tracing::warn!("cannot ask Slurm about job {job_id}: {e}"),
        }
    }
}

fn record(task: &TaskDir, job: &ExecutorJob) {
    if let Err(e) = job.write(task) {
        tracing::warn!("cannot write {}: {e}", task.executor_job().display());
    }
}

/// Writes the unit's spec and submits it; the job id.
async fn submit(
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
    let env: Vec<(String, String)> = shared
        .base_env
        .iter()
        .filter(|(k, _)| !shared.secrets.contains(k))
        .cloned()
        .collect();
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

/// Hands on the unit's new events, counting what each iteration cost to
/// the apply's budget and telling every unit what the apply spent.
fn forward(
    lines: &mut LineReader,
    shared: &Shared,
    job: &Job,
    events: &tokio::sync::mpsc::UnboundedSender<crate::runner::event::Event>,
) {
    for line in lines.read_new() {
        if let Line::IterationFinished { usage, .. } = &line
            && usage.cost_usd > 0.0
        {
            shared.limits.spend(usage.cost_usd);
            let path = ProjectDir::at(shared.project_dir.clone()).spent(&shared.apply_id);
            let spent = format!("{}\n", shared.limits.spent());
            if let Err(e) = crate::store::write_atomic_fast(&path, spent.as_bytes()) {
                tracing::warn!("cannot write {}: {e}", path.display());
            }
        }
        let _ = events.send(line.into_event(&job.key));
    }
}

/// The unit's outcome, with the fingerprint it completed with when its
/// inputs changed while it ran (the worker saved it in the task folder).
fn finish(mut out: Outcome, job: &Job, task: &TaskDir) -> Outcome {
    if out.status == Status::Done
        && let Some(now) = crate::incremental::fingerprint::Fingerprint::load(task)
        && now != *job.fingerprint
    {
        out.fingerprint = Some(Arc::new(now));
    }
    out
}
