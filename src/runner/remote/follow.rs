//! Owns the Slurm executor's launcher: following one unit's Slurm job from
//! the dispatcher (docs/distributed.md): re-attaching to the job a killed dispatcher left running or submitting
//! it, handing on the events the unit appends (counting their cost to the
//! apply's budget), stopping the job when the apply stops, a watch
//! invalidates it or a person stops it (gently, then wholly, retrying what
//! Slurm refused), and ending with the unit's outcome, or `worker_lost`
//! when the job ended without one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::sbatch;
use super::slurm::{ASK_SLURM, Slurm, record, submit};
use super::wire::{Line, LineReader, read_outcome};
use crate::process::StopLevel;
use crate::runner::context::Shared;
use crate::runner::event::Event;
use crate::runner::job::Job;
use crate::runner::launcher::{GroupCheck, Launcher, Local, MergeStart, UnitFuture, UnitStart};
use crate::runner::outcome::{Outcome, Status};
use crate::runner::unit::Launch;
use crate::stop_reason::StopReason;
use crate::store::ExecutorJob;
use crate::store::layout::{ProjectDir, TaskDir};

/// How often a unit's files are looked at.
const POLL: Duration = Duration::from_millis(200);
/// What a unit gets past the grace period to write its outcome after a
/// gentle cancel, before its whole job is cancelled.
const MARGIN: Duration = Duration::from_secs(5);
/// How long an outcome a job that completed must have written is looked
/// for: on NFS a new file's name can stay unseen by another client for the
/// directory's attribute-cache time (60 s at most by default).
const OUTCOME_WAIT: Duration = Duration::from_mins(1);
/// How many times `squeue` is asked, a second apart, whether a job a
/// killed dispatcher left still runs, before the apply gives up on it: a
/// job is never submitted twice.
const ATTACH_TRIES: u32 = 5;

/// What `scancel` has done to a job being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Nothing,
    /// SIGTERM to its unit.
    Gentle,
    /// Every process cancelled.
    Whole,
}

/// How the dispatcher is stopping a job.
#[derive(Debug)]
struct Stopping {
    reason: StopReason,
    since: Instant,
    /// Every process of the job is to be cancelled, not its unit alone.
    whole: bool,
    sent: Sent,
    /// When `scancel` was last run; a refused one is tried again a second
    /// later.
    tried: Option<Instant>,
    /// A second Ctrl-C: try at once.
    now: bool,
}

struct Follower {
    slurm: Arc<Slurm>,
    shared: Arc<Shared>,
    job: Arc<Job>,
    task: TaskDir,
    task_id: String,
    events: UnboundedSender<Event>,
    lines: LineReader,
    job_id: String,
    submitted: Instant,
    stopping: Option<Stopping>,
    node_known: bool,
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
    let mut f = Follower {
        lines: LineReader::new(task.unit_events()),
        slurm,
        shared,
        job,
        task,
        task_id,
        events,
        job_id: String::new(),
        submitted: Instant::now(),
        stopping: None,
        node_known: false,
    };
    if let Err(e) = crate::private::create_dir_all(f.task.path()) {
        let why = format!("cannot create {}: {e}", f.task.path().display());
        return f.ended(StopReason::StoreError, why);
    }
    match f.attach_or_submit(&launch).await {
        Ok(None) => f.run(&launch).await,
        Ok(Some(out)) | Err(out) => out,
    }
}

impl Follower {
    fn ended(&self, reason: StopReason, error: String) -> Outcome {
        Outcome {
            task_id: Some(self.task_id.clone()),
            task_dir: Some(self.task.path().to_path_buf()),
            error: Some(error),
            ..Outcome::ended(Status::Failed, reason)
        }
    }

    /// Follows the job a killed dispatcher left running, or submits the
    /// unit; `Some` when the unit ended while no dispatcher followed it,
    /// `Err` when it cannot be followed.
    async fn attach_or_submit(&mut self, launch: &Launch) -> Result<Option<Outcome>, Outcome> {
        if launch.resume
            && let Some(left) = ExecutorJob::read(&self.task)
        {
            let mut tries = 0;
            loop {
                match self.slurm.queue.job(&left.job_id, Instant::now()).await {
                    Ok(Some(_)) => {
                        // Its events are read from the start: what they
                        // cost counts to this apply's budget.
                        self.job_id = left.job_id;
                        return Ok(None);
                    }
                    Ok(None) => break,
                    Err(e) if tries + 1 >= ATTACH_TRIES => {
                        let why = format!(
                            "cannot ask Slurm whether job {} still runs ({e}); it is not submitted again while it may: apply again once `squeue` answers",
                            left.job_id
                        );
                        return Err(self.ended(StopReason::InternalError, why));
                    }
                    Err(_) => {
                        tries += 1;
                        tokio::time::sleep(ASK_SLURM).await;
                    }
                }
            }
            if let Some(Ok(out)) = read_outcome(&self.task.unit_outcome())
                && !out.stop_reason.is_interruption()
            {
                // It ended while no dispatcher followed it. (One that was
                // stopped is what is being resumed.)
                self.forward();
                return Ok(Some(self.finish(out)));
            }
        }
        for stale in [
            self.task.unit_outcome(),
            self.task.unit_events(),
            self.task.executor_job(),
        ] {
            let _ = std::fs::remove_file(stale);
        }
        match submit(&self.slurm, &self.shared, &self.job, launch, &self.task).await {
            Ok(id) => {
                self.job_id = id;
                self.submitted = Instant::now();
                Ok(None)
            }
            Err(why) => Err(self.ended(StopReason::InternalError, why)),
        }
    }

    async fn run(mut self, launch: &Launch) -> Outcome {
        tracing::debug!("{} runs as Slurm job {}", self.job.key, self.job_id);
        let mut stop = self.shared.supervisor.subscribe();
        // Until the session's stop signal is gone (then nothing more stops).
        let mut watching = true;
        let mut asked = Instant::now();
        loop {
            let stopping = self.stopping.is_some();
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
                () = launch.cancel.cancelled(), if !stopping => Some((StopReason::Invalidated, false)),
                () = launch.stopped.cancelled(), if !stopping => Some((StopReason::Stopped, false)),
            };
            if let Some((reason, whole)) = wanted {
                self.want_stop(reason, whole);
            }
            self.drive_stop().await;
            self.forward();
            if let Some(read) = read_outcome(&self.task.unit_outcome()) {
                self.forward();
                return self.settle(read);
            }
            if asked.elapsed() < ASK_SLURM {
                continue;
            }
            asked = Instant::now();
            match self.slurm.queue.job(&self.job_id, self.submitted).await {
                Ok(Some(q)) => {
                    if !self.node_known && !q.node.is_empty() && q.state == "RUNNING" {
                        self.node_known = true;
                        record(
                            &self.task,
                            &ExecutorJob {
                                executor: "slurm".into(),
                                job_id: self.job_id.clone(),
                                node: Some(q.node),
                            },
                        );
                    }
                }
                Ok(None) => return self.gone().await,
                Err(e) => tracing::warn!("cannot ask Slurm about job {}: {e}", self.job_id),
            }
        }
    }

    fn want_stop(&mut self, reason: StopReason, whole: bool) {
        match &mut self.stopping {
            Some(s) => {
                if whole && s.sent != Sent::Whole {
                    s.whole = true;
                    s.now = true;
                }
            }
            None => {
                self.stopping = Some(Stopping {
                    reason,
                    since: Instant::now(),
                    whole,
                    sent: Sent::Nothing,
                    tried: None,
                    now: true,
                });
            }
        }
    }

    /// Sends what stopping the job takes next: SIGTERM to its unit, which
    /// stops its agents with the grace period and writes the outcome; the
    /// whole job, when that is asked (a second Ctrl-C), when the job waits
    /// for a node (no unit to stop yet), or when the unit has not ended by
    /// the grace period and a margin. What Slurm refuses is tried again.
    async fn drive_stop(&mut self) {
        let grace = self.shared.supervisor.grace();
        let pending = match &self.stopping {
            Some(s) if !s.whole && s.sent == Sent::Nothing => matches!(
                self.slurm.queue.job(&self.job_id, self.submitted).await,
                Ok(Some(q)) if q.state == "PENDING"
            ),
            _ => false,
        };
        let Some(s) = &mut self.stopping else {
            return;
        };
        if s.sent == Sent::Whole {
            return;
        }
        if pending || (s.sent == Sent::Gentle && s.since.elapsed() > grace + MARGIN) {
            s.whole = true;
            s.now = true;
        }
        if !s.now && s.tried.is_some_and(|t| t.elapsed() < ASK_SLURM) {
            return;
        }
        if s.sent == Sent::Gentle && !s.whole {
            return;
        }
        s.now = false;
        s.tried = Some(Instant::now());
        let id = &self.job_id;
        if s.whole {
            match sbatch::cancel(id, false).await {
                Ok(()) => s.sent = Sent::Whole,
                Err(e) => tracing::warn!("cannot cancel Slurm job {id}: {e}"),
            }
        } else {
            match sbatch::cancel(id, true).await {
                Ok(()) => s.sent = Sent::Gentle,
                Err(e) => {
                    tracing::warn!("cannot stop Slurm job {id} gently: {e}");
                    s.whole = true;
                    s.now = true;
                }
            }
        }
    }

    /// The job left the queue. Its unit writes the outcome before it
    /// exits, but on NFS a new file can stay unseen a while: when Slurm
    /// says the job completed, the outcome is waited for.
    async fn gone(mut self) -> Outcome {
        self.forward();
        if let Some(read) = read_outcome(&self.task.unit_outcome()) {
            return self.settle(read);
        }
        let state = sbatch::final_state(&self.job_id).await;
        if state.as_deref() == Some("COMPLETED") {
            let since = Instant::now();
            while since.elapsed() < OUTCOME_WAIT {
                tokio::time::sleep(POLL).await;
                if let Some(read) = read_outcome(&self.task.unit_outcome()) {
                    self.forward();
                    return self.settle(read);
                }
            }
        }
        self.forward();
        let id = &self.job_id;
        match &self.stopping {
            Some(s) => self.ended(
                s.reason.clone(),
                format!("Slurm job {id} was cancelled before it could say how it ended"),
            ),
            None => self.ended(
                StopReason::WorkerLost,
                format!(
                    "Slurm job {id} ended{} without the unit's outcome (its node went down, or it was cancelled from outside); see {}",
                    state.map(|s| format!(" ({s})")).unwrap_or_default(),
                    self.task.path().join(format!("slurm-{id}.out")).display()
                ),
            ),
        }
    }

    /// The unit's outcome as the apply records it: one it ended because
    /// of a SIGTERM gets the reason this dispatcher stopped it for, or,
    /// when this dispatcher did not, is a lost worker (Slurm's own stop: a
    /// node going down, a time limit, `scancel` from outside).
    fn settle(&self, read: Result<Outcome, serde_json::Error>) -> Outcome {
        let mut out = match read {
            Ok(out) => out,
            Err(e) => {
                let why = format!("{} cannot be read: {e}", self.task.unit_outcome().display());
                return self.ended(StopReason::InternalError, why);
            }
        };
        if out.stop_reason == StopReason::Interrupted {
            match &self.stopping {
                Some(s) => out.stop_reason = s.reason.clone(),
                None => {
                    out.stop_reason = StopReason::WorkerLost;
                    out.error = Some(format!(
                        "Slurm stopped job {} (its node went down, its time limit, or `scancel` from outside)",
                        self.job_id
                    ));
                }
            }
        }
        self.finish(out)
    }

    /// The unit's outcome, with the fingerprint it completed with when its
    /// inputs changed while it ran (the worker saved it in the task folder).
    fn finish(&self, mut out: Outcome) -> Outcome {
        if out.status == Status::Done
            && let Some(now) = crate::incremental::fingerprint::Fingerprint::load(&self.task)
            && now != *self.job.fingerprint
        {
            out.fingerprint = Some(Arc::new(now));
        }
        out
    }

    /// Hands on the unit's new events, counting what each iteration cost
    /// to the apply's budget and telling every unit what the apply spent.
    fn forward(&mut self) {
        for line in self.lines.read_new() {
            if let Line::IterationFinished { usage, .. } = &line
                && usage.cost_usd > 0.0
            {
                let shared = &self.shared;
                shared.limits.spend(usage.cost_usd);
                let path = ProjectDir::at(shared.project_dir.clone()).spent(&shared.apply_id);
                let spent = format!("{}\n", shared.limits.spent());
                if let Err(e) = crate::store::write_atomic_fast(&path, spent.as_bytes()) {
                    tracing::warn!("cannot write {}: {e}", path.display());
                }
            }
            let _ = self.events.send(line.into_event());
        }
    }
}
