//! Owns `conductor __unit SPEC`, a unit run on a worker (docs/distributed.md,
//! "The unit"): it plans the workflow again from its spec, finds its
//! instance (or makes a run-time fan-out's from its item), and runs the
//! same Ralph loop a local apply runs, contained the same way, reporting
//! each iteration to `events.jsonl` and its outcome to `outcome.json`.
//! SIGTERM (what `scancel` sends) stops it as Ctrl-C stops an apply: its
//! agents get the grace period, and the outcome is still written.

use std::path::Path;
use std::sync::Arc;

use minijinja::Value;
use tokio_util::sync::CancellationToken;

use super::credentials;
use super::spec::UnitSpec;
use super::wire::{Line, LineWriter, write_outcome};
use crate::runner::context::{self, Identity, Setting, Shared, WorkflowLimits};
use crate::runner::job::{Job, JobKind};
use crate::runner::outcome::{Outcome, Status};
use crate::runner::unit::Launch;
use crate::stop_reason::StopReason;
use crate::store::layout::{ProjectDir, TaskDir};

/// Runs the unit `spec_path` describes; the process's exit code: 0 once
/// its outcome is written, whatever it is.
pub(crate) fn run(spec_path: &Path) -> u8 {
    let Some(task) = spec_path.parent().map(|p| TaskDir::at(p.to_path_buf())) else {
        say(&format!("{} is not in a task folder", spec_path.display()));
        return crate::exit_code::INVALID;
    };
    let outcome = match UnitSpec::read(spec_path) {
        // Said in the outcome, which the dispatcher reports: a spec of
        // another version is the user's to fix, not a lost worker.
        Err(e) => failed(&task, &e.to_string()),
        Ok(spec) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run_unit(&spec, &task)),
            Err(e) => failed(&task, &format!("cannot start the async runtime: {e}")),
        },
    };
    match write_outcome(&task.unit_outcome(), &outcome) {
        Ok(()) => crate::exit_code::OK,
        Err(e) => {
            say(&format!(
                "cannot write {}: {e}",
                task.unit_outcome().display()
            ));
            crate::exit_code::ENVIRONMENT
        }
    }
}

/// An error, on stderr: Slurm keeps it in the task folder's `slurm-ID.out`.
fn say(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "error: {why}");
}

/// An outcome for a unit that could not run its loop at all.
fn failed(task: &TaskDir, why: &str) -> Outcome {
    say(why);
    let mut out = Outcome::ended(Status::Failed, StopReason::InternalError);
    out.error = Some(format!("on the worker: {why}"));
    out.task_dir = Some(task.path().to_path_buf());
    out
}

async fn run_unit(spec: &UnitSpec, task: &TaskDir) -> Outcome {
    let (shared, job) = match setup(spec).await {
        Ok(s) => s,
        Err(why) => return failed(task, &why),
    };
    let JobKind::Agent(agent) = job.kind.clone() else {
        return failed(task, &format!("`{}` is not an agent's instance", spec.key));
    };
    let writer = match LineWriter::create(&task.unit_events()) {
        Ok(w) => w,
        Err(e) => {
            return failed(
                task,
                &format!("cannot write {}: {e}", task.unit_events().display()),
            );
        }
    };
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let reporter = tokio::spawn(async move {
        let mut writer = writer;
        while let Some(event) = received.recv().await {
            if let Some(line) = Line::of(&event)
                && let Err(e) = writer.write(&line)
            {
                tracing::warn!("cannot report an event: {e}");
            }
        }
    });
    let launch = Launch {
        needs: crate::prompt::context(&spec.needs),
        round: spec.round,
        group_previous: spec
            .group_previous
            .as_ref()
            .map_or(Value::UNDEFINED, crate::prompt::context),
        resume: spec.resume,
        merge: spec.merge.clone(),
        cancel: CancellationToken::new(),
        stopped: CancellationToken::new(),
    };
    let supervisor = shared.supervisor.clone();
    let out = crate::runner::unit::run(shared, Arc::new(job), agent, launch, events).await;
    let _ = reporter.await;
    supervisor.finish();
    out
}

/// The apply's `Shared`, as this worker sees it, and the unit's job.
async fn setup(spec: &UnitSpec) -> Result<(Arc<Shared>, Job), String> {
    let load = crate::load::load(
        &spec.file,
        &spec.sets,
        crate::load::LoadOptions {
            root: Some(&spec.root),
            ..crate::load::LoadOptions::default()
        },
    );
    let first_error = load
        .diagnostics
        .iter()
        .find(|d| d.is_error())
        .map(|d| d.message.clone());
    let Some(loaded) = load.into_loaded() else {
        return Err(format!(
            "cannot plan {} again: {}",
            spec.file.display(),
            first_error.unwrap_or_default()
        ));
    };
    let program = Arc::new(loaded.program);
    let job = instance(&program, &loaded.plan, spec)?;
    let apply_start = spec
        .apply_start
        .parse()
        .map_err(|e| format!("the apply's start `{}`: {e}", spec.apply_start))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find conductor itself: {e}"))?;
    let keeper = crate::process::keeper::Keeper::start(&exe, spec.containment)
        .await
        .map_err(|e| e.to_string())?;
    let supervisor = crate::process::Supervisor::new(Some(keeper), spec.grace);
    crate::process::signals::listen(&supervisor)
        .map_err(|e| format!("cannot listen for signals: {e}"))?;
    let project_dir = spec.root.join(&program.project);
    let counts = ProjectDir::at(project_dir.clone());
    let limits = WorkflowLimits::new(spec.budget_usd, program.max_agents)
        .reading_spent(counts.spent(&spec.apply_id))
        .counting_runs_in(counts.agent_runs(&spec.apply_id));
    let extra_env = credentials::read_named()?;
    let shared = Shared::new(
        Arc::clone(&program),
        Arc::new(loaded.plan.success.clone()),
        Identity {
            apply_id: spec.apply_id.clone(),
            apply_start,
            continued: spec.continued,
        },
        Setting {
            project_dir,
            runs_root: spec.root.clone(),
            agent_path: context::agent_path(&exe),
            file: Some(spec.file.clone()),
            supervisor,
            versions: Arc::new(crate::agents::version::Versions::cached_in(
                crate::store::layout::versions_cache(&spec.root),
            )),
            stop_requests: false,
            limits,
            notify: false,
            extra_env,
        },
    );
    Ok((Arc::new(shared), job))
}

/// The spec's instance: in the plan, or made from its item when it is a
/// run-time fan-out's.
fn instance(
    program: &crate::compile::Program,
    plan: &crate::plan::Plan,
    spec: &UnitSpec,
) -> Result<Job, String> {
    let jobs = crate::runner::build::build(program, plan).map_err(|e| e.to_string())?;
    let planned = jobs.values().find(|j| &*j.key == spec.key.as_str());
    let mut job = match (planned, &spec.item) {
        (Some(job), _) => job.clone(),
        (None, Some(item)) => {
            let (base, fan_out) = jobs
                .values()
                .find_map(|j| match &j.kind {
                    JobKind::FanOut(f) if program.node(j.node).id == spec.node => Some((j, f)),
                    _ => None,
                })
                .ok_or_else(|| not_planned(spec))?;
            let inst = crate::plan::instance_of_item(program, base.node, item).map_err(|d| {
                d.iter()
                    .find(|d| d.is_error())
                    .map_or_else(|| "cannot render it".to_string(), |d| d.message.clone())
            })?;
            crate::runner::build::item_job(program, base, fan_out, &inst)
                .map_err(|e| e.to_string())?
        }
        (None, None) => return Err(not_planned(spec)),
    };
    job.key = spec.key.as_str().into();
    job.fingerprint = Arc::new(spec.fingerprint.clone());
    job.isolation = spec.isolation.clone().map(Arc::new);
    Ok(job)
}

fn not_planned(spec: &UnitSpec) -> String {
    format!(
        "{} no longer plans an instance `{}` (was it edited after the apply started?)",
        spec.file.display(),
        spec.key
    )
}
