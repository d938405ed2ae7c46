//! Owns one iteration's run: its folder, prompt.md and run-info.yaml, the
//! agent started (a process in its own group, or an HTTP call) and waited
//! for under the iteration's limits, and what it left: the final answer
//! with the Go seed's precedence (output.md written by the agent > the
//! answer in its stream > its stdout) and its usage, priced with the
//! agent's `price` when the agent reports no cost.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::limits::{Cut, limit, wait};
use super::ran::Ran;
use super::record::post;
use super::request::Request;
use crate::agents::answer::final_answer;
use crate::agents::http::{Call, CallEnd};
use crate::agents::stream::{StreamReport, read_stream};
use crate::agents::usage::Usage;
use crate::process::keeper::Spawn;
use crate::process::{self, Stdio3};
use crate::runner::context::{RunPaths, Shared};
use crate::secrets::Redactor;
use crate::stop_reason::StopReason;
use crate::store::layout::RunDir;
use crate::store::{NOT_ENDED, RunInfo};

/// The run could not start: its folder cannot be written, or the agent's
/// program is missing or not executable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the agent has no program")]
    NoProgram,
    #[error("agent `{agent}`: `{program}` is not an executable file on PATH")]
    NotFound { agent: String, program: String },
    #[error("cannot start `{}`: {source}", path.display())]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StartError {
    /// Why the instance failed: its run could not be recorded (the run
    /// store), or its agent could not be started.
    pub(crate) fn stop_reason(&self) -> StopReason {
        match self {
            Self::Io { .. } => StopReason::StoreError,
            Self::NoProgram | Self::NotFound { .. } | Self::Spawn { .. } => {
                StopReason::AgentMissing
            }
        }
    }
}

fn io_context(what: &'static str, path: &Path) -> impl Fn(std::io::Error) -> StartError {
    let path = path.to_path_buf();
    move |source| StartError::Io {
        what,
        path: path.clone(),
        source,
    }
}

/// Runs one iteration; `on_start` is told the run id once the agent runs.
pub(crate) async fn run(
    shared: &Shared,
    req: &Request<'_>,
    on_start: impl FnOnce(&str),
) -> Result<Ran, StartError> {
    let run_id = req.run_id.to_string();
    let run = req.task.run(&run_id);
    let run_dir = run.path();
    let bus = &req.task.bus();
    crate::private::create_dir_all(run_dir).map_err(io_context("create", run_dir))?;
    let prompt_path = run.prompt();
    let stdout_path = run.stdout();
    let stderr_path = run.stderr();
    let output_path = run.output();
    // What prompt.md shows is what the agent is sent, byte for byte: a
    // process agent reads the file, an HTTP one is sent the same text.
    let prompt = shared.redactor.redact(req.prompt);
    std::fs::write(&prompt_path, prompt.as_bytes()).map_err(io_context("write", &prompt_path))?;
    let paths = RunPaths {
        task_id: req.task_id,
        run_id: &run_id,
        task_dir: req.task.path(),
        run_dir,
        iteration: req.iteration,
        previous_run: req.previous_run,
    };
    let env = shared.agent_env(req.job, req.agent, &paths);
    let http = req.agent.http.as_ref();
    let admitted = match http {
        None => shared.supervisor.admit().await,
        Some(_) => None,
    };
    let start = match http {
        None => Some(prepare_process(shared, req, &run)?),
        Some(_) => None,
    };
    let node = &shared.program.node(req.job.node).id;
    let info_path = run.info();
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
            .map(|i| crate::runner::context::item_text(Some(i))),
        iteration: Some(req.iteration),
        stop_reason: None,
        why: None,
        fingerprint: Some(req.job.fingerprint.hash.clone()).filter(|h| !h.is_empty()),
        input_tokens: None,
        output_tokens: None,
        cost_usd: None,
        containment: http
            .is_none()
            .then(|| shared.supervisor.containment().map(str::to_string))
            .flatten(),
        branch: req
            .job
            .isolation
            .as_ref()
            .map(|i| crate::isolation::names::branch_name(&i.workflow, &req.job.key)),
        base: req.job.isolation.as_ref().map(|i| i.base.commit.clone()),
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
            .map_err(io_context("write in", run_dir))?;
        let end = req
            .deadline
            .map_or(started + req.timeout, |d| d.min(started + req.timeout));
        let key = spec.key(&env);
        let cut = tokio::select! {
            ended = call.run(key.as_deref(), &prompt, req.idle_timeout, end) => match ended {
                CallEnd::Answered => None,
                CallEnd::Failed => Some(Cut::Backend),
                CallEnd::Refused => Some(Cut::Rejected),
                CallEnd::Stalled => Some(Cut::IdleTimeout),
            },
            cut = limit(&shared.supervisor, req) => Some(cut),
        };
        if let Some(c) = cut.filter(|c| !matches!(c, Cut::Backend | Cut::Rejected)) {
            call.stopped(&c.stop_reason().to_string());
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
            run,
            info,
            ended,
            started.elapsed(),
            &shared.redactor,
        ));
    }
    let Some((resolved, args, stdio)) = start else {
        return Err(StartError::NoProgram);
    };
    // A sandboxed agent is started by bubblewrap (docs/isolation.md).
    let (resolved, launch, launch_args) = match (resolved, sandbox_of(shared, req)) {
        (Ok(path), Some(Ok((bwrap, sandbox)))) => {
            let a = sandbox.args(&path, args);
            (Ok(path), Some(bwrap), a)
        }
        (Ok(_), Some(Err(e))) => (Err(e), None, Vec::new()),
        (r, _) => (r, None, args.to_vec()),
    };
    let spawned = match resolved {
        Ok(path) => shared
            .supervisor
            .spawn(Spawn {
                program: launch.as_deref().unwrap_or(&path),
                args: &launch_args,
                cwd: &req.job.workdir,
                env: &env,
                stdio,
                redact: shared.redactor.pairs(),
            })
            .await
            .map(|agent| (agent, path.clone()))
            .map_err(|source| StartError::Spawn { path, source }),
        Err(e) => Err(e),
    };
    drop(admitted);
    let (mut agent, program_path) = match spawned {
        Ok(a) => a,
        Err(error) => {
            let why = error.to_string();
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
            return Err(error);
        }
    };
    info.pid = i64::from(agent.pid);
    info.pgid = i64::from(agent.pid);
    if let Err(e) = info.write_running(&info_path) {
        tracing::warn!("{e}");
    }
    on_start(&run_id);

    let cut = wait(
        &shared.supervisor,
        &mut agent,
        req,
        started,
        [&stdout_path, &stderr_path],
    )
    .await;
    let exit_code = match cut {
        None => agent.wait().await,
        Some(_) => shared.supervisor.stop(&mut agent).await,
    };
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
    Ok(collect(
        req,
        run_id,
        run,
        info,
        ended,
        duration,
        &shared.redactor,
    ))
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
    run: RunDir,
    info: RunInfo,
    ended: Ended,
    duration: Duration,
    redactor: &Redactor,
) -> Ran {
    let report = ended.report;
    let answer = final_answer(&report, &run.output(), &run.stdout(), redactor);
    let (input_tokens, output_tokens) = (
        report.input_tokens.unwrap_or(0),
        report.output_tokens.unwrap_or(0),
    );
    let priced = req.agent.price.map(|p| p.cost(input_tokens, output_tokens));
    Ran {
        run_id,
        run,
        exit_code: ended.exit_code,
        cut: ended.cut,
        reported_failure: report.failed,
        reported_error: report.error.map(|e| redactor.redact(&e).into_owned()),
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

/// bubblewrap and the sandbox of a sandboxed run; `None` for a run on the
/// host.
fn sandbox_of<'r>(
    shared: &Shared,
    req: &'r Request<'_>,
) -> Option<Result<(PathBuf, SandboxOf<'r>), StartError>> {
    let iso = req.job.isolation.as_ref().filter(|i| i.sandbox)?;
    let worktree = iso.worktree.as_deref()?;
    Some(
        crate::isolation::sandbox::find(&shared.agent_path, &req.job.workdir)
            .map(|bwrap| {
                (
                    bwrap,
                    SandboxOf {
                        writable: [worktree, req.task.path()],
                        dot_git: worktree.join(".git"),
                        cwd: &req.job.workdir,
                        network: iso.network,
                    },
                )
            })
            .ok_or_else(|| StartError::NotFound {
                agent: req.agent.name.clone(),
                program: crate::isolation::sandbox::PROGRAM.to_string(),
            }),
    )
}

/// What a sandboxed run may touch, owned for the length of its start.
struct SandboxOf<'r> {
    writable: [&'r Path; 2],
    dot_git: PathBuf,
    cwd: &'r Path,
    network: bool,
}

impl SandboxOf<'_> {
    fn args(&self, program: &Path, args: &[String]) -> Vec<String> {
        crate::isolation::sandbox::Sandbox {
            writable: &self.writable,
            read_only: &[self.dot_git.as_path()],
            cwd: self.cwd,
            network: self.network,
        }
        .args(program, args)
    }
}

/// A process agent's program (or why it cannot start, recorded when the
/// run starts), its arguments, and its stdin, stdout and stderr.
type ProcessStart<'r> = (Result<PathBuf, StartError>, &'r [String], Stdio3);

/// Finds what [`ProcessStart`] holds.
fn prepare_process<'r>(
    shared: &Shared,
    req: &'r Request<'_>,
    run: &RunDir,
) -> Result<ProcessStart<'r>, StartError> {
    let (program, args) = req.agent.argv.split_first().ok_or(StartError::NoProgram)?;
    // The program found by an earlier iteration, if it is still there (one
    // stat rather than a PATH search); a program that vanished since fails
    // this run, recorded.
    let resolved = match req.program.filter(|p| p.is_file()) {
        Some(p) => Ok(p.to_path_buf()),
        None => process::resolve(program, &shared.agent_path, &req.job.workdir).ok_or_else(|| {
            StartError::NotFound {
                agent: req.agent.name.clone(),
                program: program.clone(),
            }
        }),
    };
    let append = |p: &Path| OpenOptions::new().create(true).append(true).open(p);
    let [prompt, stdout, stderr] = [run.prompt(), run.stdout(), run.stderr()];
    let stdio = Stdio3 {
        stdin: File::open(&prompt).map_err(io_context("open", &prompt))?,
        stdout: append(&stdout).map_err(io_context("create", &stdout))?,
        stderr: append(&stderr).map_err(io_context("create", &stderr))?,
    };
    Ok((resolved, args, stdio))
}
