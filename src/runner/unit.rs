//! Owns one node instance's Ralph loop: its task folder, TASK.md and task
//! bus, and the iterations, each rendered afresh (with `iteration`,
//! `previous` and `needs`), run, and judged by the success conditions,
//! until one holds or a limit (`max_iterations`, `timeout`, `idle_timeout`,
//! deadline, budgets, stall) fails the instance. Agent errors rotate to
//! the next of `fallback_agents`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use minijinja::{Value, context};
use tokio::sync::mpsc::UnboundedSender;

use super::context::{RunPaths, Shared, item_text};
use super::event::Event;
use super::iteration::{self, Cut, Ran, Request};
use super::job::{AgentJob, Job};
use super::outcome::{Outcome, Status};
use super::stall::Stall;
use super::success::{Evidence, Judged, evaluate};
use super::verdict::Verdict;
use crate::agents::answer::extract_json;
use crate::agents::usage::Usage;
use crate::preamble::{PreambleOptions, RunPlace, prompt_file};
use crate::stop_reason::StopReason;
use crate::store::layout::TaskDir;

/// The previous iteration, as templates see it.
#[derive(Debug, Default)]
struct Previous {
    output: String,
    exit_code: i32,
    stop_reason: Option<StopReason>,
    error: Option<String>,
}

/// What the dispatcher hands a unit besides its job.
#[derive(Debug)]
pub(crate) struct Launch {
    /// `needs` as its templates see it.
    pub needs: Value,
    /// The round of the looping sub-workflows it is in (1 outside them).
    pub round: u32,
    /// Their previous round's result: `previous` until the unit has its own.
    pub group_previous: Value,
    /// It was interrupted in the apply being continued: resume its loop.
    pub resume: bool,
    /// The branches of its isolated needs' work, in `needs` order, each
    /// with the instance it is from: merged into its worktree first.
    pub merge: Vec<super::merge::Source>,
    /// Fired when a watch's re-plan invalidates it.
    pub cancel: tokio_util::sync::CancellationToken,
    /// Fired when a person stops it.
    pub stopped: tokio_util::sync::CancellationToken,
}

/// A prompt that cannot be rendered: the instance fails.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the prompt of `{key}`: {source:#}")]
struct RenderError {
    key: Arc<str>,
    source: minijinja::Error,
}

/// The task folder name of `job`'s loop in `round` (from 1): each round of
/// a looping sub-workflow is a task of its own.
pub(super) fn task_id(shared: &Shared, job: &Job, round: u32) -> String {
    let task_key = if round > 1 {
        format!("{}#{}", job.key, round)
    } else {
        job.key.to_string()
    };
    crate::store::task_id(shared.apply_start, &shared.apply_id, &task_key)
}

/// Runs a resolving agent's loop (docs/isolation.md, "Merge nodes") as a
/// unit of its own: a task folder, iterations and limits like any loop,
/// told its conflict as its `item`.
pub(super) fn loop_runner(
    shared: Arc<Shared>,
    events: UnboundedSender<Event>,
) -> super::merge::LoopRunner {
    Arc::new(move |job, agent, (cancel, stopped)| {
        // Boxed: a loop may resolve its needs' conflicts with another.
        Box::pin(run(
            Arc::clone(&shared),
            job,
            agent,
            Launch {
                needs: context! {},
                round: 1,
                group_previous: Value::UNDEFINED,
                resume: false,
                merge: Vec::new(),
                cancel,
                stopped,
            },
            events.clone(),
        ))
    })
}

/// Runs `job`'s loop to its end. The dispatcher has recorded its start.
pub(super) async fn run(
    shared: Arc<Shared>,
    job: Arc<Job>,
    agent: Arc<AgentJob>,
    launch: Launch,
    events: UnboundedSender<Event>,
) -> Outcome {
    let started = Instant::now();
    let task_id = task_id(&shared, &job, launch.round);
    let task = TaskDir::at(shared.project_dir.join(&task_id));
    let mut out = Outcome {
        task_id: Some(task_id.clone()),
        task_dir: Some(task.path().to_path_buf()),
        ..Outcome::ended(Status::Failed, StopReason::NotDone)
    };
    if let Err(e) = crate::private::create_dir_all(&task.runs()) {
        out.stop_reason = StopReason::StoreError;
        out.error = Some(format!("cannot create {}: {e}", task.path().display()));
        return out;
    }
    if let Err(e) = job.fingerprint.save(&task) {
        tracing::warn!("cannot save the fingerprint of {}: {e}", job.key);
    }
    // Only a DONE made during one of this loop's iterations counts: a loop
    // that starts over must not find an earlier attempt's, and a resumed
    // one must not credit a DONE from the iteration that was cut (it was
    // never judged, and anything could have made it since).
    match std::fs::remove_file(task.done()) {
        Ok(()) => iteration::post(
            &shared,
            &task.bus(),
            "INFO",
            &task_id,
            "",
            vec![("instance", job.key.to_string())],
            if launch.resume {
                "DONE was found on resume from an interrupted iteration: removed, since only a DONE made during an iteration counts"
            } else {
                "DONE was found from an earlier attempt as the loop starts over: removed, since only a DONE made during an iteration counts"
            },
        ),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("cannot remove {}: {e}", task.done().display());
        }
        _ => {}
    }
    // An isolated loop runs in its worktree: the job as it runs there.
    let mut tree = None;
    let running = match &job.isolation {
        None => Arc::clone(&job),
        Some(iso) => {
            let run_loop = loop_runner(Arc::clone(&shared), events.clone());
            let resolving = agent.resolver.as_ref().map(|r| super::fan_in::Resolving {
                owner: &job,
                agent: r,
                run_loop: &run_loop,
                stop: (&launch.cancel, &launch.stopped),
                sources: &launch.merge,
            });
            match super::isolated::open(
                &shared,
                &job,
                iso,
                launch.resume,
                &launch.merge,
                resolving.as_ref(),
                &task.bus(),
                &task_id,
            )
            .await
            {
                Ok((t, there, used)) => {
                    out.usage.add(used);
                    tree = Some(t);
                    there
                }
                Err((reason, why, used)) => {
                    out.usage.add(used);
                    iteration::post(
                        &shared,
                        &task.bus(),
                        "ERROR",
                        &task_id,
                        "",
                        vec![("instance", job.key.to_string())],
                        &why,
                    );
                    out.error = Some(why);
                    out.duration = started.elapsed();
                    fail(&mut out, reason);
                    return out;
                }
            }
        }
    };
    let mut looper = Looper {
        agent_error: None,
        tree: tree.as_ref(),
        commit: None,
        shared: &shared,
        job: &running,
        agent: &agent,
        needs: launch.needs,
        group_previous: launch.group_previous,
        resume: launch.resume,
        cancel: launch.cancel,
        stopped: launch.stopped,
        task_id: &task_id,
        task: &task,
        events: &events,
        records: iteration::GroupCommit::new(),
    };
    looper.run(&mut out, started).await;
    looper.records.finish().await;
    if let Some(t) = &tree {
        match t.result(job.writes.as_deref()).await {
            Ok(w) => out.worktree = Some(Box::new(w)),
            Err(e) => tracing::warn!("cannot read what {} changed: {e}", t.branch()),
        }
    }
    if out.status == Status::Failed && out.error.is_none() {
        // A loop that ran out after agent errors fails for their reason.
        out.error = looper.agent_error.take();
    }
    out.duration = started.elapsed();
    if out.status == Status::Done {
        let now = job
            .fingerprint
            .with_inputs_now(&job.workdir, &job.inputs, &shared.runs_root);
        if now != *job.fingerprint {
            if let Err(e) = now.save(&task) {
                tracing::warn!("cannot save the fingerprint of {}: {e}", job.key);
            }
            out.fingerprint = Some(Arc::new(now));
        }
    }
    out
}

struct Looper<'a> {
    /// What the last iteration's agent error was, in its own words.
    agent_error: Option<String>,
    /// An isolated loop's worktree, and the last iteration's commit.
    tree: Option<&'a super::isolated::Tree>,
    commit: Option<String>,
    shared: &'a Shared,
    job: &'a Arc<Job>,
    agent: &'a AgentJob,
    needs: Value,
    group_previous: Value,
    resume: bool,
    cancel: tokio_util::sync::CancellationToken,
    stopped: tokio_util::sync::CancellationToken,
    task_id: &'a str,
    task: &'a TaskDir,
    events: &'a UnboundedSender<Event>,
    /// When the loop's run records reach the disk.
    records: iteration::GroupCommit,
}

impl Looper<'_> {
    async fn run(&mut self, out: &mut Outcome, started: Instant) {
        let stop = &self.agent.stop;
        let deadline = stop.deadline.map(|d| started + d);
        let mut previous: Option<Previous> = None;
        let mut last_why: Option<String> = None;
        let mut previous_run: Option<String> = None;
        let mut agent_index = 0;
        let mut programs: Vec<Option<PathBuf>> = vec![None; self.agent.agents.len()];
        let mut usage = Usage::default();
        // Runs already in the folder keep their numbers; new ones follow.
        let seq_base = crate::incremental::resume::existing_runs(self.task);
        let mut first = 1;
        if self.resume {
            let resumed = crate::incremental::resume::read(self.task);
            first = resumed.iterations + 1;
            usage = resumed.usage;
            out.usage = usage;
            out.iterations = resumed.iterations;
            if let Some(last) = resumed.last {
                previous_run = Some(last.run_id);
                previous = Some(Previous {
                    output: last.answer,
                    exit_code: last.exit_code,
                    stop_reason: last.stop_reason,
                    error: None,
                });
            }
        }
        let mut stall = stop
            .stall
            .map(|n| Stall::new(n, self.job.workdir.clone(), self.shared.runs_root.clone()));
        for iteration in first..=stop.max_iterations {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return fail(out, StopReason::Deadline);
            }
            if self.shared.stop_level() > crate::process::StopLevel::Running {
                return fail(out, StopReason::Interrupted);
            }
            if self.cancel.is_cancelled() {
                return fail(out, StopReason::Invalidated);
            }
            if self.stopped.is_cancelled() {
                return fail(out, StopReason::Stopped);
            }
            if let Err(cap) = self.shared.limits.claim_run() {
                out.error = Some(format!("the workflow's `{cap}` limit is used up"));
                return fail(out, cap);
            }
            let agent = &self.agent.agents[agent_index];
            let prompt = match self.render(iteration, previous.as_ref()) {
                Ok(p) => p,
                Err(e) => {
                    out.error = Some(e.to_string());
                    return fail(out, StopReason::RenderError);
                }
            };
            if iteration == 1 {
                let task_md = self.task.task_md();
                if !task_md.exists()
                    && let Err(e) =
                        std::fs::write(&task_md, self.shared.redactor.redact(&prompt).as_bytes())
                {
                    tracing::warn!("cannot write {}: {e}", task_md.display());
                }
            }
            let run_id =
                crate::store::run_id(seq_base + iteration - first + 1, crate::clock::now());
            let text = self.prompt_text(&run_id, iteration, &prompt, agent.http.is_none());
            let req = Request {
                job: self.job,
                agent,
                task_id: self.task_id,
                task: self.task,
                run_id: &run_id,
                program: programs[agent_index].as_deref(),
                iteration,
                previous_run: previous_run.as_deref(),
                prompt: &text,
                timeout: stop.timeout,
                idle_timeout: stop.idle_timeout,
                deadline,
                cancel: &self.cancel,
                stopped: &self.stopped,
            };
            let key = Arc::clone(&self.job.key);
            let events = self.events.clone();
            let max = stop.max_iterations;
            let agent_name = agent.name.clone();
            let agent_kind = agent.kind;
            let ran = iteration::run(self.shared, &req, move |run_id| {
                let _ = events.send(Event::IterationStarted {
                    key,
                    iteration,
                    max_iterations: max,
                    run_id: run_id.to_string(),
                    agent: agent_name,
                    kind: agent_kind,
                });
            })
            .await;
            let ran = match ran {
                Ok(r) => r,
                Err(e) => {
                    let why = e.to_string();
                    iteration::post(
                        self.shared,
                        &self.task.bus(),
                        "ERROR",
                        self.task_id,
                        "",
                        Vec::new(),
                        &why,
                    );
                    out.error = Some(why);
                    out.iterations = iteration;
                    // The run store failing (a full disk) is not the agent's
                    // fault, and is said as what it is.
                    return fail(out, e.stop_reason());
                }
            };
            out.iterations = iteration;
            out.run_id = Some(ran.run_id.clone());
            out.exit_code = Some(ran.exit_code);
            // The agent's changes are committed before anything judges
            // them, whatever ended the iteration: nothing is left only in
            // a worktree.
            if let Some(tree) = self.tree {
                match tree.commit(iteration, &ran.run_id).await {
                    Ok(c) => self.commit = c,
                    Err(why) => {
                        let why =
                            format!("cannot commit the iteration to {}: {why}", tree.branch());
                        self.record(&ran, iteration, &Verdict::Error(why.clone()))
                            .await;
                        out.error = Some(why);
                        return fail(out, StopReason::WorktreeError);
                    }
                }
            }
            programs[agent_index] = Some(ran.program.clone());
            usage.add(ran.usage);
            self.shared.limits.spend(ran.usage.cost_usd);
            out.usage = usage;
            // The conditions and the JSON judge the whole answer, not the
            // part templates are handed.
            let judges_answer = self.agent.json
                || self.agent.stop.promise.is_some()
                || self.agent.stop.output_matches.is_some()
                || self.agent.stop.expr.is_some();
            let whole = if judges_answer && ran.cut.is_none() {
                crate::agents::answer::whole(&ran.answer, &ran.run.output())
            } else {
                Ok(std::borrow::Cow::Borrowed(ran.answer.as_str()))
            };
            let whole = match whole {
                Ok(w) => w,
                Err(too_large) => {
                    let verdict = Verdict::Error(too_large.to_string());
                    self.record(&ran, iteration, &verdict).await;
                    out.error = Some(too_large.to_string());
                    return fail(out, StopReason::StopError);
                }
            };
            // The answer's JSON, and why it is not usable when it is not.
            let (json, json_error) = match (self.agent.json, ran.cut) {
                (false, _) | (true, Some(_)) => (None, None),
                (true, None) => match extract_json(&whole) {
                    None => (None, Some("the answer holds no JSON".to_string())),
                    Some(v) => match self.agent.schema.as_ref().map(|s| s.check(&v)) {
                        Some(Err(e)) => (None, Some(e.to_string())),
                        _ => (Some(v), None),
                    },
                },
            };
            let agent_error = ran.exit_code != 0 || ran.reported_failure;
            self.agent_error =
                if agent_error && matches!(ran.cut, None | Some(Cut::Backend | Cut::Rejected)) {
                    iteration::error_summary(&ran)
                } else {
                    None
                };
            let mut verdict = match ran.cut {
                Some(cut) => Verdict::Cut(cut),
                None => {
                    self.judge(&ran, &whole, iteration, json.as_ref(), agent_error)
                        .await
                }
            };
            // A JSON node is not done on an answer whose JSON is missing or invalid.
            if let Some(e) = &json_error
                && matches!(verdict, Verdict::Done(_))
            {
                verdict = Verdict::InvalidJson(e.clone());
            }
            self.record(&ran, iteration, &verdict).await;
            out.output.clone_from(&ran.answer);
            out.json = json;
            match verdict {
                Verdict::Done(reason) => {
                    out.status = Status::Done;
                    out.stop_reason = reason;
                    return;
                }
                Verdict::Error(why) => {
                    out.error = Some(why);
                    return fail(out, StopReason::StopError);
                }
                Verdict::NotDone(_)
                | Verdict::AgentError(_)
                | Verdict::InvalidJson(_)
                | Verdict::Cut(_) => {}
            }
            // The node's cause, should this be its last iteration.
            last_why = verdict.why().or_else(|| iteration::error_summary(&ran));
            let rotate = self.agent.agents.len() > 1
                && (agent_error
                    || matches!(
                        ran.cut,
                        Some(Cut::Timeout | Cut::IdleTimeout | Cut::Backend | Cut::Rejected)
                    ));
            match ran.cut {
                Some(Cut::Interrupted) => return fail(out, StopReason::Interrupted),
                Some(Cut::Rejected) if !rotate => return fail(out, StopReason::BackendError),
                // Out of retries: this iteration failed; the next may do better.
                Some(Cut::Backend) => {}
                Some(Cut::Invalidated) => return fail(out, StopReason::Invalidated),
                Some(Cut::Stopped) => return fail(out, StopReason::Stopped),
                Some(Cut::Deadline) => return fail(out, StopReason::Deadline),
                Some(cut) if !rotate => return fail(out, cut.stop_reason()),
                _ => {}
            }
            if stop.budget_usd.is_some_and(|b| usage.cost_usd > b) {
                return fail(out, StopReason::BudgetUsd);
            }
            if stop.budget_tokens.is_some_and(|b| usage.tokens() > b) {
                return fail(out, StopReason::BudgetTokens);
            }
            if let Some(s) = stall.as_mut()
                && s.observe(&ran.answer)
            {
                return fail(out, StopReason::Stall);
            }
            if rotate {
                agent_index = (agent_index + 1) % self.agent.agents.len();
            }
            previous_run = Some(ran.run_id.clone());
            previous = Some(Previous {
                output: ran.answer,
                exit_code: ran.exit_code,
                stop_reason: Some(verdict.stop_reason()),
                error: json_error,
            });
        }
        if let Some(why) = last_why {
            out.error
                .get_or_insert_with(|| format!("the last iteration: {why}"));
        }
        fail(out, StopReason::MaxIterations);
    }

    /// What the success conditions make of a run the agent ended itself.
    async fn judge(
        &self,
        ran: &Ran,
        whole: &str,
        iteration: u32,
        json: Option<&serde_json::Value>,
        agent_error: bool,
    ) -> Verdict {
        let scope = &self.shared.program.scopes[self.shared.program.node(self.job.node).scope];
        let ctx = context! {
            output => whole,
            json => json.map(crate::prompt::context),
            iteration => iteration,
            exit_code => ran.exit_code,
            item => self.job.item.as_ref().map(crate::prompt::context),
            params => crate::prompt::context(&serde_json::Value::Object(scope.params.clone())),
            needs => self.needs.clone(),
        };
        // The `command` check runs in the agent's environment; only it needs one.
        let env: Vec<(String, String)> = if self.agent.stop.command.is_some() {
            self.shared.agent_env(
                self.job,
                &self.agent.agents[0],
                &RunPaths {
                    task_id: self.task_id,
                    run_id: &ran.run_id,
                    task_dir: self.task.path(),
                    run_dir: ran.run.path(),
                    iteration,
                    previous_run: None,
                },
            )
        } else {
            Vec::new()
        };
        let done_file = self.task.done();
        let ev = Evidence {
            done_file: &done_file,
            workdir: &self.job.workdir,
            answer: whole,
            exit_code: ran.exit_code,
            agent_failed: ran.reported_failure,
            context: ctx,
            env: &env,
            command_output: &ran.run.stop_command(),
            redact: self.shared.redactor.pairs(),
        };
        match evaluate(&self.agent.stop, &scope.templates, &ev, self.shared).await {
            Ok(Judged::Done(reason)) => Verdict::Done(reason),
            Ok(Judged::NotDone(mut why)) if agent_error => {
                why.agent = Some(agent_failure(ran));
                Verdict::AgentError(why)
            }
            Ok(Judged::NotDone(why)) => Verdict::NotDone(why),
            Err(e) => Verdict::Error(e.to_string()),
        }
    }

    fn render(&self, iteration: u32, previous: Option<&Previous>) -> Result<String, RenderError> {
        let node = &self.shared.program.node(self.job.node);
        let scope = &self.shared.program.scopes[node.scope];
        // Undefined on iteration 1 (unless a looping sub-workflow had an
        // earlier round), so `{% if previous is defined %}` works.
        let previous = previous.map_or_else(
            || self.group_previous.clone(),
            |p| {
                context! {
                    output => p.output.as_str(),
                    exit_code => p.exit_code,
                    stop_reason => p.stop_reason.as_ref().map(ToString::to_string),
                    error => p.error.as_deref(),
                }
            },
        );
        let ctx = context! {
            params => crate::prompt::context(&serde_json::Value::Object(scope.params.clone())),
            vars => crate::prompt::context(&self.agent.vars),
            env => crate::prompt::env_value(self.shared.base_env.iter().cloned(), &self.shared.secrets),
            node => node.id.as_str(),
            workflow => scope.workflow.as_str(),
            item => self.job.item.as_ref().map(crate::prompt::context),
            matrix => self.job.matrix.as_ref().map(|m| crate::prompt::context(&serde_json::Value::Object(m.clone()))),
            iteration => iteration,
            previous => previous,
            needs => self.needs.clone(),
        };
        scope
            .templates
            .get_template(&self.agent.template)
            .and_then(|t| t.render(ctx))
            .map_err(|source| RenderError {
                key: Arc::clone(&self.job.key),
                source,
            })
    }

    fn prompt_text(&self, run_id: &str, iteration: u32, prompt: &str, local: bool) -> String {
        let run = self.task.run(run_id);
        let bus = self.task.bus();
        let place = RunPlace {
            project_id: &self.shared.project,
            task_id: self.task_id,
            run_id,
            task_folder: self.task.path(),
            run_folder: run.path(),
            bus: &bus,
        };
        prompt_file(
            &place,
            PreambleOptions {
                done_file: self.agent.stop.done_file,
                iteration,
                prompt_uses_previous: self.agent.uses_previous,
                local,
            },
            prompt,
        )
    }

    /// The run's terminal record, on disk and on the task bus.
    async fn record(&mut self, ran: &Ran, iteration: u32, verdict: &Verdict) {
        // A check that could not be evaluated says why where the run does,
        // first: it is what failed the node.
        let run_error = iteration::error_summary(ran);
        let error = match verdict {
            Verdict::Error(why) => Some(match run_error {
                Some(e) => format!("{why} ({e})"),
                None => why.clone(),
            }),
            _ => run_error,
        };
        let reason = verdict.stop_reason();
        let why = verdict
            .why()
            .map(|w| self.shared.redactor.redact(&w).into_owned());
        let durable = self.records.due();
        let wrote =
            iteration::finish_record(ran, &reason, error.clone(), why.clone(), durable).await;
        self.records.written(ran.run.info(), durable && wrote);
        let node = &self.shared.program.node(self.job.node).id;
        let kind = if ran.exit_code == 0 {
            "RUN_STOP"
        } else {
            "RUN_CRASH"
        };
        let mut body = format!(
            "run stopped with code {}\nrun_dir: {}\noutput: {}",
            ran.exit_code,
            ran.run.path().display(),
            ran.run.output().display()
        );
        if ran.exit_code != 0 {
            let tail = iteration::tail_lines(&ran.run.stderr(), 50);
            if !tail.is_empty() {
                body.push_str("\nstderr tail:\n");
                body.push_str(&tail);
            }
        }
        let mut meta = vec![
            ("node", node.clone()),
            ("instance", self.job.key.to_string()),
            ("iteration", iteration.to_string()),
            ("exit_code", ran.exit_code.to_string()),
            ("stop_reason", reason.to_string()),
            ("duration_ms", ran.duration.as_millis().to_string()),
        ];
        if let Some(item) = &self.job.item {
            meta.push(("item", item_text(Some(item))));
        }
        if let Some(why) = why {
            meta.push(("why", why));
        }
        if let Some(tree) = self.tree {
            meta.push(("branch", tree.branch().to_string()));
            if let Some(c) = self.commit.take() {
                meta.push(("commit", c));
            }
        }
        if ran.usage != Usage::default() {
            meta.push(("input_tokens", ran.usage.input_tokens.to_string()));
            meta.push(("output_tokens", ran.usage.output_tokens.to_string()));
            meta.push(("cost_usd", format!("{:.6}", ran.usage.cost_usd)));
        }
        iteration::post(
            self.shared,
            &self.task.bus(),
            kind,
            self.task_id,
            &ran.run_id,
            meta,
            &body,
        );
        let _ = self.events.send(Event::IterationFinished {
            key: Arc::clone(&self.job.key),
            iteration,
            exit_code: ran.exit_code,
            verdict: verdict.clone(),
            duration: ran.duration,
            usage: ran.usage,
        });
    }
}

/// What an agent that failed said of it: conductor's summary of its exit,
/// with its own error or the last line of its stderr.
fn agent_failure(ran: &Ran) -> String {
    let summary = iteration::error_summary(ran).unwrap_or_else(|| "the agent failed".to_string());
    if ran.reported_error.is_some() {
        return summary;
    }
    let last = iteration::tail_lines(&ran.run.stderr(), 1);
    if last.trim().is_empty() {
        summary
    } else {
        format!("{summary}: {}", last.trim())
    }
}

fn fail(out: &mut Outcome, reason: StopReason) {
    out.status = Status::Failed;
    out.stop_reason = reason;
}
