//! Owns execution (DESIGN §3 step 3-4): from a checked plan to a finished
//! apply. It resolves the runs root and checks the environment before
//! anything starts, runs the dispatcher on a tokio runtime with the stop
//! signals wired in, runs the `[success]` commands, and returns the summary.

mod backend;
mod context;
mod dispatcher;
pub mod event;
pub mod fingerprint;
pub mod freshness;
mod group;
mod iteration;
mod job;
pub mod outcome;
mod prior;
mod process;
mod resume;
mod select;
mod shell;
mod signals;
mod stale;
mod stall;
mod success;
pub mod summary;
mod unit;
pub mod version;
pub mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use dispatcher::Observer;
pub use prior::UP_TO_DATE;
pub use summary::Summary;

use crate::compile::Program;
use crate::plan::Plan;
use context::{Shared, StopLevel};
use summary::SuccessSummary;

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

/// The runs root (DESIGN §4): `--root`, else `CONDUCTOR_ROOT`, else the
/// workflow's `root`, else `.conductor/runs` under the current directory.
pub fn runs_root(program: &Program, flag: Option<&Path>) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let entry_dir = program
        .scopes
        .first()
        .map_or_else(|| cwd.clone(), |s| s.dir.clone());
    let chosen = flag
        .map(|r| cwd.join(r))
        .or_else(|| {
            std::env::var_os("CONDUCTOR_ROOT")
                .filter(|v| !v.is_empty())
                .map(|r| cwd.join(r))
        })
        .or_else(|| program.root.as_ref().map(|r| entry_dir.join(r)))
        .unwrap_or_else(|| cwd.join(".conductor").join("runs"));
    crate::compile::paths::normalize(&chosen)
}

/// Runs `plan`; `observer` sees every event as it happens.
pub fn apply(
    program: Program,
    plan: &Plan,
    options: &ApplyOptions,
    observer: &mut dyn Observer,
) -> Result<Summary, ApplyError> {
    let started = Instant::now();
    let mut jobs = job::build(&program, plan).map_err(|e| ApplyError::Invalid(e.to_string()))?;
    let root = runs_root(&program, options.root.as_deref());
    let project_dir = root.join(&program.project);
    let exe = std::env::current_exe()
        .map_err(|e| ApplyError::Environment(format!("cannot find conductor's own binary: {e}")))?;
    let agent_path = agent_path(&exe);
    let versions = Arc::new(version::Versions::default());
    fingerprint::compute(
        &mut jobs,
        &mut fingerprint::Context {
            program: &program,
            plan,
            inputs: &mut fingerprint::inputs::InputHasher::new(vec![root.clone()]),
            versions: &versions,
            path_var: &agent_path,
        },
    );
    let mut forced_later = std::collections::HashSet::new();
    if let Some(names) = &options.force {
        let ids: Vec<&str> = program.nodes.iter().map(|n| n.id.as_str()).collect();
        let forced = prior::force(&mut jobs, names, &ids);
        forced_later = forced.later;
        if let Some(name) = forced.unknown.first() {
            let help = crate::diagnostic::did_you_mean(name, ids.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(ApplyError::Invalid(format!(
                "--force {name}: no node or instance has that name{help}"
            )));
        }
    }
    let jobs = select::only(jobs, &options.only, &program).map_err(ApplyError::Invalid)?;
    prepare_root(&root, &project_dir, options.root.is_some())?;
    preflight(&jobs, &agent_path, &program)?;
    let finalised = stale::finalise(&project_dir, &program.project);
    if finalised.applies > 0 {
        eprintln!(
            "conductor: finalised {} earlier apply(s) whose conductor had died ({} run(s) left running)",
            finalised.applies, finalised.runs
        );
    }

    let base_env: Vec<(String, String)> = std::env::vars().collect();
    let mut secrets: Vec<String> = crate::secrets::VENDOR_KEYS
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    for scope in &program.scopes {
        for (_, a) in &scope.agents {
            if let Some(k) = &a.api_key_env {
                secrets.push(k.value.clone());
            }
        }
    }
    let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let redactor = crate::secrets::Redactor::new(
        base_env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &secret_refs,
    );
    let budget = match (options.budget_usd, program.budget_usd) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let max_agents = program.max_agents;
    let index = crate::store::index::Index::load(&project_dir, &program.name);
    let continued = if options.fresh {
        None
    } else {
        unfinished(&index)
    };
    let (apply_id, apply_start) = continued.clone().unwrap_or_else(|| {
        let now = jiff::Timestamp::now();
        let id = format!(
            "apply-{}-{}",
            now.strftime("%Y%m%d-%H%M%S"),
            crate::store::short_hash(&format!("{}{}", std::process::id(), now.as_nanosecond()), 3)
        );
        (id, now)
    });
    let mut prior = prior::Prior::new(
        project_dir.clone(),
        &index,
        continued.as_ref().map(|(id, _)| id.as_str()),
    );
    prior.force_later(forced_later);
    let not_writable = |e: std::io::Error| {
        ApplyError::Environment(format!(
            "the runs root is not writable: cannot create a file in {}: {e}\n  help: pass a writable folder with --root, or set CONDUCTOR_ROOT",
            project_dir.display()
        ))
    };
    let workflow_lock =
        crate::store::live::WorkflowLock::acquire(&project_dir, &program.name, &apply_id)
            .map_err(not_writable)?
            .map_err(|holder| {
                ApplyError::Environment(format!(
                    "workflow `{}` is already being applied in {} by {holder}\n  help: wait for it to finish, or stop it (Ctrl-C, or `kill` that pid)",
                    program.name,
                    project_dir.display()
                ))
            })?;
    let live =
        crate::store::live::LiveApply::register(&project_dir, &apply_id).map_err(not_writable)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(StopLevel::Running);
    let stop_tx = Arc::new(stop_tx);
    let watchdog = watchdog::Watchdog::start(&exe)
        .map_err(|e| ApplyError::Environment(format!("cannot start the process watchdog: {e}")))?;
    let shared = Arc::new(Shared {
        workflow: program.name.clone(),
        project: program.project.clone(),
        program: Arc::new(program),
        apply_id,
        apply_start,
        continued: continued.is_some(),
        project_dir,
        runs_root: root.clone(),
        base_env,
        secrets,
        redactor,
        agent_path,
        grace: options.grace,
        watchdog: Mutex::new(Some(watchdog)),
        stop: stop_rx,
        limits: context::WorkflowLimits::new(budget, max_agents),
        versions,
    });
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ApplyError::Environment(format!("cannot start the async runtime: {e}")))?;
    let limits = dispatcher::Limits {
        max_parallel: options.max_parallel.max(1),
        fail_fast: options.fail_fast,
    };
    let entry_dir = shared
        .program
        .scopes
        .first()
        .map(|s| s.dir.clone())
        .unwrap_or_default();
    let (instances, success, signal) = runtime.block_on(async {
        let signals = signals::listen(Arc::clone(&stop_tx))
            .map_err(|e| ApplyError::Environment(format!("cannot install signal handlers: {e}")))?;
        let d = dispatcher::Dispatcher::new(
            Arc::clone(&shared),
            jobs,
            limits,
            Arc::clone(&stop_tx),
            observer,
            prior,
        );
        let (instances, stop_reason) = d.run().await;
        let mut success = Vec::new();
        let failed = instances
            .iter()
            .any(|i| i.status == outcome::Status::Failed && i.counts);
        // An apply that found everything up to date after a successful one
        // has nothing new to check.
        let all_current =
            !shared.continued && instances.iter().all(|i| i.stop_reason == UP_TO_DATE);
        if stop_reason.is_none() && !failed && !all_current {
            for c in &plan.success {
                if shared.stop_level() > StopLevel::Running {
                    break;
                }
                let workdir = crate::compile::paths::normalize(&entry_dir.join(&c.workdir));
                let code = shell::run_success(&c.command, &workdir, &shared).await;
                observer.event(&event::Event::SuccessChecked {
                    command: c.command.clone(),
                    exit_code: code,
                });
                success.push(SuccessSummary {
                    command: c.command.clone(),
                    exit_code: code,
                });
            }
        }
        Ok::<_, ApplyError>((instances, success, signals.received()))
    })?;
    if let Ok(mut w) = shared.watchdog.lock()
        && let Some(w) = w.take()
    {
        w.finish();
    }
    let mut summary = Summary {
        workflow: shared.workflow.clone(),
        apply_id: shared.apply_id.clone(),
        project: shared.project.clone(),
        root: root.display().to_string(),
        status: String::new(),
        exit_code: 0,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        counts: summary::Counts::default(),
        usage: outcome::Usage::default(),
        instances,
        success,
    };
    summary.settle(signal);
    record_stop(&shared, &summary);
    crate::store::index::Index::load(&shared.project_dir, &shared.workflow)
        .save(&shared.project_dir, &shared.workflow);
    live.finish();
    workflow_lock.release();
    Ok(summary)
}

/// The workflow's latest apply, when it did not finish (DESIGN §9.12):
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
fn agent_path(exe: &Path) -> String {
    let own = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(own).chain(std::env::split_paths(&rest));
    std::env::join_paths(dirs).map_or_else(
        |_| rest.to_string_lossy().into_owned(),
        |p| p.to_string_lossy().into_owned(),
    )
}

/// Every agent program and workdir exists before anything starts.
fn preflight(jobs: &[job::Job], path: &str, program: &Program) -> Result<(), ApplyError> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for job in jobs {
        let node = &program.nodes[job.node].id;
        let agents = match &job.kind {
            job::JobKind::Agent(a) | job::JobKind::FanOut { agent: a, .. } => &a.agents,
            job::JobKind::Gate(_) | job::JobKind::Group { .. } => continue,
        };
        if !job.workdir.is_dir() && seen.insert(("dir", job.workdir.display().to_string())) {
            problems.push(format!(
                "node `{node}`: workdir {} does not exist",
                job.workdir.display()
            ));
        }
        for a in agents {
            let Some(program_name) = a.argv.first() else {
                continue;
            };
            if !seen.insert(("agent", a.name.clone() + program_name)) {
                continue;
            }
            if process::resolve(program_name, path, &job.workdir).is_none() {
                let how = match a.kind {
                    crate::model::AgentKind::Claude => {
                        "\n  help: install it with `npm install -g @anthropic-ai/claude-code`"
                    }
                    crate::model::AgentKind::Codex => {
                        "\n  help: install it with `npm install -g @openai/codex`"
                    }
                    crate::model::AgentKind::Gemini => {
                        "\n  help: install it with `npm install -g @google/gemini-cli`"
                    }
                    _ => "\n  help: install it, or fix the agent's `command`",
                };
                problems.push(format!(
                    "agent `{}` (node `{node}`): `{program_name}` is not found on PATH{how}",
                    a.name
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Environment(problems.join("\n")))
    }
}
