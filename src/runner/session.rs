//! Owns what lives as long as one `apply`, or as long as one `watch` across
//! the applies it starts: the runs root and project folder, the lock that
//! keeps a second conductor off the workflow, the process keeper, the
//! async runtime and the stop signals. Each apply run in the session gets
//! its own identity (a new apply id, or the unfinished one it continues),
//! its own `Shared`, and its own records on the project bus.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::context::{self, Shared};
use super::dispatcher::{self, Control};
use super::error::ApplyError;
use super::event::Observer;
use super::launcher::Local;
use super::options::ApplyOptions;
use super::prepare::{Prepared, Preparer};
use super::summary::Summary;
use crate::agents::version::Versions;
use crate::compile::Program;
use crate::incremental::{prior, stale};
use crate::process::keeper::Launch;
use crate::process::{StopLevel, Supervisor, signals};

/// One apply, or one watch.
#[derive(Debug)]
pub(crate) struct Session {
    pub root: PathBuf,
    pub project_dir: PathBuf,
    pub agent_path: String,
    pub versions: Arc<Versions>,
    pub options: ApplyOptions,
    supervisor: Supervisor,
    lock: Option<crate::store::live::WorkflowLock>,
    runtime: tokio::runtime::Runtime,
    /// SIGUSR1 brings a person's request to stop one instance.
    stop_requests: bool,
    /// Applies run so far (the first may continue an unfinished one).
    applies: u32,
    /// Where units run: here, or as Slurm jobs.
    slurm: Option<Arc<super::remote::Slurm>>,
    /// The apply index as the last apply left it, by workflow name: a
    /// watch's next apply folds in only what was appended since instead
    /// of reading the whole index again (docs/performance.md, issue 18).
    index: Option<(String, Arc<crate::store::index::Index>)>,
}

/// Starts the keeper of an apply or watch about to be compiled, so that it
/// gets ready meanwhile: its start-up and first cgroup move cost more than
/// compiling a small workflow (docs/performance.md, issue 18). `None` when it
/// cannot be started; [`Session::open`] then tries again and says why.
pub(crate) fn launch_keeper(containment: crate::process::Containment) -> Option<Launch> {
    // Before the keeper starts: it and every agent it starts inherit the
    // limit, and a run holds descriptors in the keeper while it lives.
    raise_fd_limit();
    let exe = std::env::current_exe().ok()?;
    Launch::new(&exe, containment).ok()
}

impl Session {
    /// Prepares the runs root, finalises dead applies (telling `observer`),
    /// takes the workflow's lock, starts the keeper (or takes the one
    /// `launch` started) and listens for stop signals.
    pub(crate) fn open(
        program: &Program,
        options: &ApplyOptions,
        observer: &mut dyn Observer,
        launch: Option<Launch>,
    ) -> Result<Self, ApplyError> {
        let root =
            crate::store::layout::runs_root(options.root.as_deref(), program.declared_root());
        let slurm = executor(options)?;
        let project_dir = root.join(&program.project);
        let exe = std::env::current_exe().map_err(ApplyError::OwnBinary)?;
        let agent_path = super::context::agent_path(&exe);
        let launch = match launch {
            Some(l) => l,
            None => Launch::new(&exe, options.containment).map_err(ApplyError::Keeper)?,
        };
        prepare_root(&root, &project_dir)?;
        let finalised = stale::finalise(
            &crate::store::layout::ProjectDir::at(project_dir.clone()),
            &program.project,
        );
        if finalised.applies > 0 {
            observer.event(&super::event::Event::StaleFinalised {
                applies: finalised.applies,
                runs: finalised.runs,
            });
        }
        let holder = format!("conductor {}", std::process::id());
        let lock = crate::store::live::WorkflowLock::acquire(&project_dir, &program.name, &holder)
            .map_err(|e| not_writable(&project_dir, e))?
            .map_err(|held| ApplyError::Locked {
                workflow: program.name.clone(),
                dir: project_dir.clone(),
                holder: held.0,
            })?;
        raise_fd_limit();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ApplyError::Runtime)?;
        let keeper = runtime
            .block_on(launch.ready())
            .map_err(ApplyError::Keeper)?;
        let supervisor = Supervisor::new(Some(keeper), options.grace);
        runtime
            .block_on(async { signals::listen(&supervisor) })
            .map_err(ApplyError::Signals)?;
        // Before the apply is registered as running: a stop request is
        // only ever sent to an apply that says it takes them.
        let stop_requests = runtime.block_on(async { dispatcher::install_stop_requests() });
        let versions = Arc::new(Versions::cached_in(crate::store::layout::versions_cache(
            &root,
        )));
        Ok(Self {
            root,
            project_dir,
            agent_path,
            versions,
            options: options.clone(),
            supervisor,
            lock: Some(lock),
            runtime,
            stop_requests,
            applies: 0,
            slurm,
            index: None,
        })
    }

    /// What building jobs needs, to do it away from the session (a watch
    /// re-plans on its own thread).
    pub(crate) fn preparer(&self) -> Preparer {
        // The runs root as found, which a `working-tree` base leaves out.
        let options = crate::runner::ApplyOptions {
            root: Some(self.root.clone()),
            ..self.options.clone()
        };
        Preparer::new(Arc::clone(&self.versions), self.agent_path.clone(), options)
    }

    /// The `Shared` of an apply of `program`, with a fresh identity.
    pub(super) fn shared(
        &self,
        program: Arc<Program>,
        success: Arc<Vec<crate::plan::SuccessCommand>>,
        identity: context::Identity,
    ) -> Shared {
        let budget = match (self.options.budget_usd, program.budget_usd) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut limits = context::WorkflowLimits::new(budget, program.max_agents);
        if self.slurm.is_some() {
            // Counted afresh by each apply, as locally.
            let project = crate::store::layout::ProjectDir::at(self.project_dir.clone());
            for counted in [
                project.spent(&identity.apply_id),
                project.agent_runs(&identity.apply_id),
            ] {
                let _ = std::fs::remove_file(counted);
            }
            limits = limits.counting_runs_in(project.agent_runs(&identity.apply_id));
        }
        Shared::new(
            program,
            success,
            identity,
            context::Setting {
                project_dir: self.project_dir.clone(),
                runs_root: self.root.clone(),
                agent_path: self.agent_path.clone(),
                file: self.options.file.clone(),
                supervisor: self.supervisor.clone(),
                versions: Arc::clone(&self.versions),
                stop_requests: self.stop_requests,
                limits,
                notify: true,
                extra_env: Vec::new(),
            },
        )
    }

    /// Runs one apply of `plan` to its end; `control` brings a watch's new
    /// plans into it while it runs.
    pub(crate) fn run(
        &mut self,
        program: Arc<Program>,
        success: Arc<Vec<crate::plan::SuccessCommand>>,
        prepared: Prepared,
        observer: &mut dyn Observer,
        control: Option<&mut mpsc::UnboundedReceiver<Control>>,
        why: Option<String>,
    ) -> Result<Summary, ApplyError> {
        let started = Instant::now();
        let mut index = Arc::new(match self.index.take() {
            Some((workflow, kept)) if workflow == program.name => {
                Arc::unwrap_or_clone(kept).refreshed(&self.project_dir, &program.name)
            }
            _ => crate::store::index::Index::load(&self.project_dir, &program.name),
        });
        let continued = if self.options.fresh && self.applies == 0 {
            None
        } else {
            unfinished(&index)
        };
        self.applies += 1;
        let (apply_id, apply_start) = continued.clone().unwrap_or_else(|| {
            let now = crate::clock::now();
            let id = format!(
                "apply-{}-{}",
                now.strftime("%Y%m%d-%H%M%S"),
                crate::store::short_hash(
                    &format!("{}{}", std::process::id(), now.as_nanosecond()),
                    3
                )
            );
            (id, now)
        });
        let mut prior = prior::Prior::new(
            self.project_dir.clone(),
            Arc::clone(&index),
            continued.as_ref().map(|(id, _)| id.as_str()),
        );
        prior.force_later(prepared.forced_later);
        let live = crate::store::live::LiveApply::register(&self.project_dir, &apply_id)
            .map_err(|e| not_writable(&self.project_dir, e))?;
        if let Some(why) = why {
            let will_run = prepared
                .jobs
                .values()
                .filter(|j| {
                    matches!(
                        j.kind,
                        super::job::JobKind::Agent(_) | super::job::JobKind::Group { .. }
                    ) && j.completed(&prior).is_none()
                })
                .map(|j| Arc::clone(&j.key))
                .collect();
            observer.event(&super::event::Event::Triggered { why, will_run });
        }
        let shared = Arc::new(self.shared(
            program,
            success,
            context::Identity {
                apply_id,
                apply_start,
                continued: continued.is_some(),
            },
        ));
        let limits = dispatcher::Limits {
            max_parallel: self.options.max_parallel.max(1),
            fail_fast: self.options.fail_fast,
        };
        let ended = self.runtime.block_on(
            dispatcher::Dispatcher::new(dispatcher::Setup {
                shared: Arc::clone(&shared),
                jobs: prepared.jobs,
                limits,
                observer,
                launcher: match &self.slurm {
                    Some(slurm) => slurm,
                    None => &Local,
                },
                prior,
                control,
            })
            .run(),
        );
        let (instances, success, overlaps, final_shared) =
            (ended.instances, ended.success, ended.overlaps, ended.shared);
        let mut summary = Summary {
            workflow: final_shared.workflow.clone(),
            apply_id: final_shared.apply_id.clone(),
            project: final_shared.project.clone(),
            root: self.root.display().to_string(),
            status: super::summary::ApplyStatus::Done,
            exit_code: 0,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            counts: super::summary::Counts::default(),
            usage: crate::agents::usage::Usage::default(),
            instances,
            success,
            overlaps,
        };
        summary.settle(self.signal());
        record_stop(&final_shared, &summary);
        if let Some(n) = &final_shared.notifier {
            self.runtime.block_on(async {
                n.send("apply.finished", stop_payload(&final_shared, &summary));
                n.drain().await;
            });
        }
        // What this apply recorded, folded in once for the next one (a
        // watch's edit may have renamed the workflow: then read it afresh).
        if final_shared.workflow != shared.workflow {
            index = Arc::new(crate::store::index::Index::load(
                &self.project_dir,
                &final_shared.workflow,
            ));
        }
        // The prior went with the dispatcher: the index is this one's alone.
        Arc::make_mut(&mut index).catch_up(&self.project_dir, &final_shared.workflow);
        index.save(&self.project_dir, &final_shared.workflow);
        self.index = Some((final_shared.workflow.clone(), index));
        live.finish();
        Ok(summary)
    }

    /// The first stop signal received, if any.
    pub(crate) fn signal(&self) -> Option<i32> {
        self.supervisor.signal()
    }

    /// Waits, between applies, for the next control message; `None` once
    /// the session is being stopped.
    pub(crate) fn wait_control(
        &self,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Option<Control> {
        let mut stop = self.supervisor.subscribe();
        self.runtime.block_on(async {
            if *stop.borrow() > StopLevel::Running {
                return None;
            }
            tokio::select! {
                c = control.recv() => c,
                _ = stop.wait_for(|l| *l > StopLevel::Running) => None,
            }
        })
    }

    /// Whether the session is being stopped.
    pub(crate) fn stopping(&self) -> bool {
        self.supervisor.stop_level() > StopLevel::Running
    }

    /// Ends the session: the keeper ends what is left and exits and the lock is released.
    pub(crate) fn close(mut self) {
        self.supervisor.finish();
        if let Some(lock) = self.lock.take() {
            lock.release();
        }
    }
}

/// The Slurm executor, when the options ask for it and Slurm answers.
fn executor(options: &ApplyOptions) -> Result<Option<Arc<super::remote::Slurm>>, ApplyError> {
    let super::Executor::Slurm { sbatch_args } = &options.executor else {
        return Ok(None);
    };
    let Some(file) = options.file.clone() else {
        return Err(ApplyError::Executor(
            "a unit run elsewhere plans its workflow file again, and this apply has none".into(),
        ));
    };
    super::remote::Slurm::new(
        file,
        options.sets.clone(),
        sbatch_args.clone(),
        options.containment,
    )
    .map(|s| Some(Arc::new(s)))
    .map_err(|e| ApplyError::Executor(e.to_string()))
}

fn not_writable(project_dir: &Path, source: std::io::Error) -> ApplyError {
    ApplyError::RootNotWritable {
        what: format!("a file in {}", project_dir.display()),
        source,
    }
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

/// What the `apply.finished` webhook says.
fn stop_payload(shared: &Shared, summary: &Summary) -> serde_json::Value {
    serde_json::json!({
        "workflow": shared.workflow,
        "project": shared.project,
        "apply_id": shared.apply_id,
        "status": summary.status.to_string(),
        "exit_code": summary.exit_code,
        "done": summary.counts.done,
        "failed": summary.counts.failed,
        "skipped": summary.counts.skipped,
        "duration_ms": summary.duration_ms,
        "cost_usd": summary.usage.cost_usd,
        "ts": crate::bus::format_ts(crate::clock::now()),
    })
}

/// `WORKFLOW_STOP` on the project bus.
fn record_stop(shared: &Shared, summary: &Summary) {
    let path = shared.project_dir.join(crate::store::layout::PROJECT_BUS);
    let Ok(mut bus) = crate::bus::BusWriter::open(&path) else {
        return;
    };
    let meta = [
        ("apply_id", shared.apply_id.clone()),
        ("workflow", shared.workflow.clone()),
        ("status", summary.status.to_string()),
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

/// Creates the root and project folders, and keeps a default root out of
/// git; any failure is an environment error.
fn prepare_root(root: &Path, project_dir: &Path) -> Result<(), ApplyError> {
    let fail = |what: &Path, source: std::io::Error| ApplyError::RootNotWritable {
        what: what.display().to_string(),
        source,
    };
    // Whether files can be written in it is found by the first one written
    // (the apply's registration), not by a probe: a file created and deleted
    // costs a millisecond on some file systems.
    crate::private::create_dir_all(project_dir).map_err(|e| fail(project_dir, e))?;
    // A project folder an older conductor made is closed too: it holds
    // what agents did.
    crate::private::restrict(project_dir).map_err(|e| fail(project_dir, e))?;
    crate::store::layout::keep_out_of_git(root);
    // The project bus is where the apply is recorded: one that cannot be
    // appended to (a folder, a FIFO, a symlink) stops it before any agent.
    crate::bus::BusWriter::open(
        &crate::store::layout::ProjectDir::at(project_dir.to_path_buf()).bus(),
    )
    .map_err(ApplyError::Bus)?;
    Ok(())
}
