//! Owns one iteration of a Ralph loop: one run folder, one agent process
//! or HTTP call. It writes prompt.md and run-info.yaml, starts the agent,
//! waits for it while watching the timeout, idle timeout, deadline and stop
//! signal, stops its group when one fires, and collects the final answer
//! with the seed's precedence (output.md written by the agent > the answer
//! in its stream > its stdout), usage (priced with the agent's `price` when
//! the agent reports no cost) and the terminal run record. HTTP agents'
//! calls are made by `crate::agents::http`, under the same limits.

mod record;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::time::Instant as TokioInstant;

use super::context::{RunPaths, Shared};
use super::job::Job;
use crate::agents::answer::final_answer;
use crate::agents::http::{Call, CallEnd};
use crate::agents::spec::AgentSpec;
use crate::agents::stream::{StreamReport, read_stream};
use crate::agents::usage::Usage;
use crate::process::{self, Stdio3, StopLevel, group};
use crate::store::{NOT_ENDED, RunInfo};
pub use record::{error_summary, finish_record, post, tail_lines};

/// Why a run ended without an answer to judge: an agent stopped before it
/// exited by itself, or an HTTP call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Timeout,
    IdleTimeout,
    Deadline,
    Interrupted,
    /// A watch's re-plan changed what this run was doing.
    Invalidated,
    /// An HTTP agent's API kept failing past the retries, or the time ran
    /// out between them (docs/agents.md): the iteration failed, the loop
    /// goes on.
    Backend,
    /// An HTTP agent's API refused the call for good (400, 401, 403, 404,
    /// no key): the node fails at once.
    Rejected,
}

impl Cut {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Deadline => "deadline",
            Self::Interrupted => "interrupted",
            Self::Invalidated => "invalidated",
            Self::Backend | Self::Rejected => "backend_error",
        }
    }
}

/// What one run left behind.
#[derive(Debug)]
pub struct Ran {
    pub run_id: String,
    pub run_dir: PathBuf,
    pub exit_code: i32,
    pub cut: Option<Cut>,
    /// The agent reported failure in its stream (claude's `is_error`, codex's `turn.failed`).
    pub reported_failure: bool,
    /// What the agent's stream said went wrong.
    pub reported_error: Option<String>,
    /// The final answer, capped for templates.
    pub answer: String,
    pub usage: Usage,
    pub duration: Duration,
    /// The run's record as written when it started; this run owns it.
    pub info: RunInfo,
    /// Where the agent's program was found.
    pub program: PathBuf,
}

/// The run could not start: the agent's program is missing or not executable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Everything one iteration needs.
#[derive(Debug)]
pub struct Request<'a> {
    pub job: &'a Job,
    pub agent: &'a AgentSpec,
    pub task_id: &'a str,
    pub task_dir: &'a Path,
    pub run_id: &'a str,
    /// The agent's program as an earlier iteration found it.
    pub program: Option<&'a Path>,
    pub iteration: u32,
    pub previous_run: Option<&'a str>,
    /// The prompt.md text (preamble and prompt).
    pub prompt: &'a str,
    pub timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// When the node's deadline passes, if it has one.
    pub deadline: Option<Instant>,
    /// Fired when a watch's re-plan invalidates the instance.
    pub cancel: &'a tokio_util::sync::CancellationToken,
}

fn io_context(what: &str, path: &Path) -> impl Fn(std::io::Error) -> StartError {
    let text = format!("cannot {what} {}", path.display());
    move |e| StartError(format!("{text}: {e}"))
}

/// Runs one iteration; `on_start` is told the run id once the agent runs.
pub async fn run(
    shared: &Shared,
    bus: &Path,
    req: &Request<'_>,
    on_start: impl FnOnce(&str),
) -> Result<Ran, StartError> {
    let run_id = req.run_id.to_string();
    let run_dir = req.task_dir.join("runs").join(&run_id);
    std::fs::create_dir_all(&run_dir).map_err(io_context("create", &run_dir))?;
    let prompt_path = run_dir.join("prompt.md");
    let stdout_path = run_dir.join("agent-stdout.txt");
    let stderr_path = run_dir.join("agent-stderr.txt");
    let output_path = run_dir.join("output.md");
    std::fs::write(&prompt_path, shared.redactor.redact(req.prompt).as_bytes())
        .map_err(io_context("write", &prompt_path))?;
    let paths = RunPaths {
        task_id: req.task_id,
        run_id: &run_id,
        task_dir: req.task_dir,
        run_dir: &run_dir,
        iteration: req.iteration,
        previous_run: req.previous_run,
    };
    let env = shared.agent_env(req.job, req.agent, &paths);
    let http = req.agent.http.as_ref();
    let start = match http {
        None => Some(prepare_process(shared, req, &run_dir)?),
        Some(_) => None,
    };
    let node = &shared.program.nodes[req.job.node].id;
    let info_path = run_dir.join("run-info.yaml");
    let mut info = RunInfo {
        version: 1,
        run_id: run_id.clone(),
        parent_run_id: None,
        previous_run_id: req.previous_run.map(str::to_string),
        project_id: shared.project.clone(),
        task_id: req.task_id.to_string(),
        agent: req.agent.kind.as_str().to_string(),
        // An HTTP run has no process of conductor's to reap.
        process_ownership: Some(http.map_or("managed", |_| "external").into()),
        pid: 0,
        pgid: 0,
        start_time: crate::bus::format_ts(crate::clock::now()),
        end_time: NOT_ENDED.into(),
        exit_code: -1,
        status: "running".into(),
        cwd: Some(req.job.workdir.display().to_string()),
        prompt_path: Some(prompt_path.display().to_string()),
        output_path: Some(output_path.display().to_string()),
        stdout_path: Some(stdout_path.display().to_string()),
        stderr_path: Some(stderr_path.display().to_string()),
        commandline: Some(
            shared
                .redactor
                .redact(&format!(
                    "{} < {}",
                    http.map_or_else(|| req.agent.argv.join(" "), |h| h.call.clone()),
                    prompt_path.display()
                ))
                .into_owned(),
        ),
        error_summary: None,
        agent_version: shared.versions.of(
            req.agent.kind,
            req.agent.argv.first().map_or("", String::as_str),
            &shared.agent_path,
            &req.job.workdir,
        ),
        workflow: Some(shared.workflow.clone()),
        node: Some(node.clone()),
        item: req
            .job
            .item
            .as_ref()
            .map(|i| super::context::item_text(Some(i))),
        iteration: Some(req.iteration),
        stop_reason: None,
        fingerprint: Some(req.job.fingerprint.hash.clone()).filter(|h| !h.is_empty()),
        input_tokens: None,
        output_tokens: None,
        cost_usd: None,
    };
    // RUN_START comes first on the task bus: a fast agent may post at once.
    post(
        shared,
        bus,
        "RUN_START",
        req.task_id,
        &run_id,
        Vec::new(),
        &format!(
            "run started\nrun_dir: {}\nprompt: {}\nstdout: {}\nstderr: {}\noutput: {}",
            run_dir.display(),
            prompt_path.display(),
            stdout_path.display(),
            stderr_path.display(),
            output_path.display()
        ),
    );
    let started = Instant::now();
    if let Some(spec) = http {
        if let Err(e) = info.write_running(&info_path) {
            tracing::warn!("{e}");
        }
        on_start(&run_id);
        let mut call = Call::open(spec, &stdout_path, &stderr_path, &shared.redactor)
            .map_err(io_context("write in", &run_dir))?;
        let end = req
            .deadline
            .map_or(started + req.timeout, |d| d.min(started + req.timeout));
        let key = spec.key(&env);
        let cut = tokio::select! {
            ended = call.run(key.as_deref(), req.prompt, req.idle_timeout, end) => match ended {
                CallEnd::Answered => None,
                CallEnd::Failed => Some(Cut::Backend),
                CallEnd::Refused => Some(Cut::Rejected),
                CallEnd::Stalled => Some(Cut::IdleTimeout),
            },
            cut = limit(shared, req) => Some(cut),
        };
        if let Some(c) = cut.filter(|c| !matches!(c, Cut::Backend | Cut::Rejected)) {
            call.stopped(c.as_str());
        }
        let report = call.report();
        let ended = Ended {
            // A complete answer is the HTTP kinds' exit 0 (docs/agents.md).
            exit_code: i32::from(cut.is_some() || report.failed),
            cut,
            report,
            program: PathBuf::new(),
        };
        return Ok(collect(
            req,
            run_id,
            run_dir,
            info,
            ended,
            started.elapsed(),
        ));
    }
    let Some((resolved, args, stdio)) = start else {
        return Err(StartError("the agent has no program".into()));
    };
    let spawned = resolved.and_then(|path| {
        group::spawn(&path, args, &req.job.workdir, &env, stdio)
            .map(|agent| (agent, path.clone()))
            .map_err(|e| format!("cannot start `{}`: {e}", path.display()))
    });
    let (mut agent, program_path) = match spawned {
        Ok(a) => a,
        Err(why) => {
            info.status = "failed".into();
            info.end_time = crate::bus::format_ts(crate::clock::now());
            info.error_summary = Some(why.clone());
            if let Err(e) = info.write(&info_path) {
                tracing::warn!("{e}");
            }
            post(
                shared,
                bus,
                "RUN_CRASH",
                req.task_id,
                &run_id,
                Vec::new(),
                &why,
            );
            return Err(StartError(why));
        }
    };
    shared.supervisor.hold(&agent);
    info.pid = i64::from(agent.pid);
    info.pgid = i64::from(agent.pid);
    if let Err(e) = info.write_running(&info_path) {
        tracing::warn!("{e}");
    }
    on_start(&run_id);

    let cut = wait(shared, &mut agent, req, started, &stdout_path, &stderr_path).await;
    let status = match cut {
        None => agent.child.wait().await,
        Some(_) => shared.supervisor.stop(&mut agent).await,
    };
    group::sweep(&agent);
    shared.supervisor.release(&agent);
    let exit_code = status.map_or(-1, process::exit_code);
    let duration = started.elapsed();

    let report = read_stream(req.agent.kind, &stdout_path).unwrap_or_else(|e| {
        tracing::warn!("{e}");
        StreamReport {
            failed: true,
            ..StreamReport::default()
        }
    });
    let ended = Ended {
        exit_code,
        cut,
        report,
        program: program_path,
    };
    Ok(collect(req, run_id, run_dir, info, ended, duration))
}

/// How an agent's run ended, as `collect` needs it.
struct Ended {
    exit_code: i32,
    cut: Option<Cut>,
    report: StreamReport,
    program: PathBuf,
}

/// The final answer (output.md made to exist), and the usage, priced with
/// the agent's `price` when the agent reports no cost of its own (claude
/// does; codex, gemini and the HTTP APIs report tokens only).
fn collect(
    req: &Request<'_>,
    run_id: String,
    run_dir: PathBuf,
    info: RunInfo,
    ended: Ended,
    duration: Duration,
) -> Ran {
    let report = ended.report;
    let answer = final_answer(
        &report,
        &run_dir.join("output.md"),
        &run_dir.join("agent-stdout.txt"),
    );
    let (input_tokens, output_tokens) = (
        report.input_tokens.unwrap_or(0),
        report.output_tokens.unwrap_or(0),
    );
    let priced = req.agent.price.map(|p| p.cost(input_tokens, output_tokens));
    Ran {
        run_id,
        run_dir,
        exit_code: ended.exit_code,
        cut: ended.cut,
        reported_failure: report.failed,
        reported_error: report.error,
        answer,
        usage: Usage {
            input_tokens,
            output_tokens,
            cost_usd: report.cost_usd.or(priced).unwrap_or(0.0),
        },
        duration,
        info,
        program: ended.program,
    }
}

/// A process agent's program (or why it cannot start, recorded when the
/// run starts), its arguments, and its stdin, stdout and stderr.
type ProcessStart<'r> = (Result<PathBuf, String>, &'r [String], Stdio3);

/// Finds what [`ProcessStart`] holds.
fn prepare_process<'r>(
    shared: &Shared,
    req: &'r Request<'_>,
    run_dir: &Path,
) -> Result<ProcessStart<'r>, StartError> {
    let (program, args) = req
        .agent
        .argv
        .split_first()
        .ok_or_else(|| StartError("the agent has no program".into()))?;
    // The program found by an earlier iteration, if it is still there (one
    // stat rather than a PATH search); a program that vanished since fails
    // this run, recorded.
    let resolved = match req.program.filter(|p| p.is_file()) {
        Some(p) => Ok(p.to_path_buf()),
        None => process::resolve(program, &shared.agent_path, &req.job.workdir).ok_or_else(|| {
            format!(
                "agent `{}`: `{program}` is not an executable file on PATH",
                req.agent.name
            )
        }),
    };
    let append = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
    let [prompt, stdout, stderr] =
        ["prompt.md", "agent-stdout.txt", "agent-stderr.txt"].map(|f| run_dir.join(f));
    let stdio = Stdio3 {
        stdin: File::open(&prompt).map_err(io_context("open", &prompt))?,
        stdout: append(&stdout).map_err(io_context("create", &stdout))?,
        stderr: append(&stderr).map_err(io_context("create", &stderr))?,
    };
    Ok((resolved, args, stdio))
}

/// Resolves with the first of the iteration's limits to fire: its
/// timeout, the node's deadline, a stop of the apply, or a watch's re-plan.
/// Process agents and HTTP calls are cut by the same limits.
async fn limit(shared: &Shared, req: &Request<'_>) -> Cut {
    let deadline = async {
        match req.deadline {
            Some(d) => tokio::time::sleep_until(TokioInstant::from_std(d)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(req.timeout) => Cut::Timeout,
        () = deadline => Cut::Deadline,
        () = shared.supervisor.reached(StopLevel::Graceful) => Cut::Interrupted,
        () = req.cancel.cancelled() => Cut::Invalidated,
    }
}

/// Waits for the agent to exit, or for the first limit or stop to fire
/// (`idle_timeout` included: output goes straight to files, so activity
/// is their growth).
async fn wait(
    shared: &Shared,
    agent: &mut process::Spawned,
    req: &Request<'_>,
    started: Instant,
    stdout: &Path,
    stderr: &Path,
) -> Option<Cut> {
    let idle = async {
        let Some(limit) = req.idle_timeout else {
            return std::future::pending().await;
        };
        let every = (limit / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let size = || {
            [stdout, stderr]
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum::<u64>()
        };
        let mut last = size();
        let mut quiet_since = started;
        loop {
            tokio::time::sleep(every).await;
            let now = size();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= limit {
                return;
            }
        }
    };
    tokio::select! {
        _ = agent.child.wait() => None,
        cut = limit(shared, req) => Some(cut),
        () = idle => Some(Cut::IdleTimeout),
    }
}
