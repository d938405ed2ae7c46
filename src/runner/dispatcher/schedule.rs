//! Owns the dispatcher: the one owner of all run state of an apply
//! (docs/architecture.md, "The dispatcher"). It starts each job when its
//! needs are terminal and a slot is free (globally and per node) through
//! the launcher, evaluates gates, skips the dependents of failures, stops
//! everything on Ctrl-C or `--fail-fast`, skips what is up to date, and
//! runs the workflow's `[success]` commands once the last unit has ended.
//! Units talk to it only by events and their outcome. Its state is grouped
//! by concern, each kept by the file that holds its logic: the job graph
//! (`graph`), the caps (`slots`), the running units (`units`), run-time
//! fan-out (`fan_out`), looping sub-workflows (`groups`), a watch's
//! re-plans (`replan`) and what is told (`records`).

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::fan_out::{self, Expansion, FanOuts};
use super::graph::{JobGraph, State};
use super::groups::{self, RoundEnd, Rounds};
use super::records::{self, Output};
use super::replan::{self, Replans, Taken};
use super::slots::Slots;
use super::units::{Launched, Owner, Units};
use crate::bus::BusWriter;
use crate::incremental::prior::Prior;
use crate::model::OnFailure;
use crate::process::StopLevel;
use crate::runner::context::Shared;
use crate::runner::event::{Event, Observer};
use crate::runner::job::{Job, JobId, JobKind, PerJob};
use crate::runner::launcher::{GroupCheck, Launcher, MergeStart, UnitStart};
use crate::runner::outcome::{Outcome, Status};
use crate::runner::success_commands;
use crate::runner::summary::{InstanceSummary, SuccessSummary};
use crate::runner::unit::Launch;
use crate::stop_reason::StopReason;

/// Options of one execution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_parallel: usize,
    pub fail_fast: bool,
}

/// A watch's message to a running apply.
#[derive(Debug)]
pub(crate) enum Control {
    /// The files changed: run this plan from now on.
    Replan {
        jobs: PerJob<Job>,
        program: Arc<crate::compile::Program>,
        success: Arc<Vec<crate::plan::SuccessCommand>>,
        /// What changed, for the line the console prints.
        why: String,
    },
}

/// What an apply ended with: every instance's summary in plan order, its
/// `[success]` commands, and the `Shared` in force at the end (a re-plan
/// replaces it).
#[derive(Debug)]
pub(crate) struct Ended {
    pub instances: Vec<InstanceSummary>,
    /// The workflow's `[success]` commands, when they ran.
    pub success: Vec<SuccessSummary>,
    /// Isolated instances that changed the same files side by side.
    pub overlaps: Vec<crate::runner::summary::Overlap>,
    pub shared: Arc<Shared>,
}

/// A job to settle, and how.
struct Settle {
    job: JobId,
    outcome: Outcome,
    /// Announce its end (an end recorded before a re-plan is not).
    loud: bool,
    /// Its own end, rather than a fan-out's whose instances all ended.
    own: bool,
}

/// The next control message, or never when there is no control channel.
async fn next_control(control: Option<&mut mpsc::UnboundedReceiver<Control>>) -> Option<Control> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

pub(crate) struct Dispatcher<'a> {
    shared: Arc<Shared>,
    graph: JobGraph,
    slots: Slots,
    units: Units,
    fan_outs: FanOuts,
    rounds: Rounds,
    replans: Replans,
    out: Output<'a>,
    launcher: &'a dyn Launcher,
    /// Earlier applies' records: what is up to date, what resumes.
    prior: Prior,
    fail_fast: bool,
    /// Why the apply is stopping, once it is.
    stop_reason: Option<StopReason>,
    /// The console was told of the first stop signal.
    told_signal: bool,
    /// Events from units.
    events: mpsc::UnboundedReceiver<Event>,
    sender: mpsc::UnboundedSender<Event>,
    /// A watch's new plans, while this apply runs.
    control: Option<&'a mut mpsc::UnboundedReceiver<Control>>,
    /// Jobs found up to date, settled a chunk at a time once what must
    /// run has started (`Self::settle_up_to_date`).
    up_to_date: std::collections::VecDeque<JobId>,
}

/// How many up-to-date jobs are settled between two looks at the units:
/// a save of one input among 10,000 starts its agent before the other
/// 9,999 are recorded (docs/performance.md, issue 18).
const UP_TO_DATE_CHUNK: usize = 256;

impl std::fmt::Debug for Dispatcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("jobs", &self.graph.len())
            .field("running", &self.slots.running())
            .finish_non_exhaustive()
    }
}

/// What the dispatcher is handed to run an apply.
pub(crate) struct Setup<'a> {
    pub shared: Arc<Shared>,
    pub jobs: PerJob<Job>,
    pub limits: Limits,
    pub observer: &'a mut dyn Observer,
    pub launcher: &'a dyn Launcher,
    pub prior: Prior,
    pub control: Option<&'a mut mpsc::UnboundedReceiver<Control>>,
}

impl std::fmt::Debug for Setup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("jobs", &self.jobs.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<'a> Dispatcher<'a> {
    pub(crate) fn new(setup: Setup<'a>) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        let bus = match BusWriter::open(
            &setup
                .shared
                .project_dir
                .join(crate::store::layout::PROJECT_BUS),
        ) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        Self {
            shared: setup.shared,
            graph: JobGraph::new(setup.jobs),
            slots: Slots::new(setup.limits.max_parallel),
            units: Units::default(),
            fan_outs: FanOuts::default(),
            rounds: Rounds::default(),
            replans: Replans::default(),
            out: Output {
                bus,
                observer: setup.observer,
            },
            launcher: setup.launcher,
            prior: setup.prior,
            fail_fast: setup.limits.fail_fast,
            stop_reason: None,
            told_signal: false,
            events,
            sender,
            control: setup.control,
            up_to_date: std::collections::VecDeque::new(),
        }
    }

    /// Runs every job to a terminal state.
    pub(crate) async fn run(mut self) -> Ended {
        self.emit(&Event::WorkflowStarted {
            apply_id: self.shared.apply_id.clone(),
            workflow: self.shared.workflow.clone(),
            instances: self.graph.len(),
            fan_outs: self
                .graph
                .jobs
                .values()
                .filter(|j| matches!(j.kind, JobKind::FanOut(_)))
                .count(),
            project_dir: self.shared.project_dir.clone(),
            budget_usd: self.shared.limits.budget_usd,
        });
        let mut queued = 0;
        let mut stop_rx = self.shared.supervisor.subscribe();
        let mut requests = super::requests::Requests::open(
            self.shared.project_dir.clone(),
            self.shared.apply_id.clone(),
        );
        loop {
            self.launch();
            if self.slots.running() == 0
                && self.graph.ready.is_empty()
                && self.up_to_date.is_empty()
            {
                break;
            }
            let now = self.graph.ready.len() + self.slots.held();
            if now != queued {
                queued = now;
                self.emit(&Event::Queued { queued });
            }
            tokio::select! {
                Some((launched, outcome)) = self.units.next() => self.unit_ended(launched, outcome),
                Some(control) = next_control(self.control.as_deref_mut()) => self.control(control),
                Some(event) = self.events.recv() => self.emit(&event),
                keys = requests.next() => self.stop_asked(&keys),
                // After the units had their turn.
                () = tokio::task::yield_now(), if !self.up_to_date.is_empty() => {
                    self.settle_up_to_date();
                }
                Ok(()) = stop_rx.changed() => {
                    let level = *stop_rx.borrow();
                    let signalled = self.shared.supervisor.signal().is_some();
                    if level > StopLevel::Running && self.stop_reason.is_none() {
                        self.stopping(StopReason::Interrupted);
                    } else if signalled && !self.told_signal {
                        // Already stopping (`--fail-fast`): the user is
                        // still told what Ctrl-C does now.
                        self.emit(&Event::Stopping {
                            reason: StopReason::Interrupted,
                        });
                    }
                    self.told_signal |= signalled;
                }
            }
        }
        self.drain_events();
        // Failures a passing gate tolerated are said, and recorded so
        // that a later apply keeps them while they are up to date.
        let tolerated: Vec<(Arc<str>, Vec<Arc<str>>)> = self
            .graph
            .jobs
            .ids()
            .filter(|&j| {
                self.graph
                    .outcome(j)
                    .is_some_and(|o| o.stop_reason != StopReason::UpToDate)
            })
            .filter_map(|j| {
                let gates = records::tolerating_gates(&self.graph, &self.fan_outs, j);
                (!gates.is_empty()).then(|| {
                    (
                        Arc::clone(&self.graph.jobs[j].key),
                        gates
                            .iter()
                            .map(|&g| Arc::clone(&self.graph.jobs[g].key))
                            .collect(),
                    )
                })
            })
            .collect();
        for (key, gates) in tolerated {
            self.emit(&Event::Tolerated { key, gates });
        }
        let untolerated: Vec<Arc<str>> = self
            .graph
            .jobs
            .ids()
            .filter(|&j| {
                self.graph.outcome(j).is_some_and(|o| {
                    o.status == Status::Failed && o.stop_reason == StopReason::UpToDate
                }) && records::tolerating_gates(&self.graph, &self.fan_outs, j).is_empty()
            })
            .map(|j| Arc::clone(&self.graph.jobs[j].key))
            .collect();
        for key in untolerated {
            self.emit(&Event::NoLongerTolerated { key });
        }
        for (key, files) in records::inputs_changed(&self.graph, &self.shared.runs_root) {
            self.emit(&Event::InputsChanged { key, files });
        }
        for (key, files) in super::overlap::outside_writes(&self.graph) {
            self.emit(&Event::OutsideWrites { key, files });
        }
        let overlaps = super::overlap::overlaps(&self.graph, &self.fan_outs);
        for o in &overlaps {
            self.emit(&Event::Overlapped {
                instances: o.instances.clone(),
                files: o.files.clone(),
            });
        }
        let instances = records::summaries(
            &self.graph,
            &self.fan_outs,
            &self.rounds,
            &self.shared.program,
        );
        let success = success_commands::check(
            &self.shared,
            &instances,
            self.stop_reason.as_ref(),
            self.told_signal,
            &mut records::Recorder {
                out: &mut self.out,
                shared: &self.shared,
                graph: &self.graph,
            },
        )
        .await;
        Ended {
            instances,
            success,
            overlaps,
            shared: self.shared,
        }
    }

    /// A unit ended: its job goes on, or (invalidated by a re-plan) a new
    /// run of its key may start now.
    fn unit_ended(&mut self, launched: Launched, mut outcome: Outcome) {
        self.slots.end();
        let retry = self.slots.stop_writing(&launched.key);
        self.graph.ready.extend(retry);
        self.drain_events();
        match launched.owner {
            Owner::Invalidated => {
                if let Some(j) = self.replans.drained(&launched.key) {
                    self.graph.ready.insert(j);
                }
            }
            Owner::Adopted => {
                // Kept by a re-plan, and ended before its new job was
                // reached; its fingerprint goes with it, in case another
                // re-plan comes first.
                outcome
                    .fingerprint
                    .get_or_insert_with(|| Arc::clone(&launched.fingerprint));
                self.replans.ended_early(launched.key, outcome);
                if launched.slot {
                    self.release_slot(&launched.node);
                }
            }
            Owner::Job(i) => {
                if let JobKind::Group { .. } = self.graph.jobs[i].kind {
                    match groups::round_ended(
                        i,
                        outcome,
                        self.stop_reason.is_some(),
                        &mut self.graph,
                        &mut self.fan_outs,
                        &mut self.rounds,
                    ) {
                        RoundEnd::Finish(outcome) => self.finish(i, outcome),
                        RoundEnd::Again(event) => self.emit(&event),
                    }
                } else {
                    self.release_slot(&launched.node);
                    self.finish(i, outcome);
                }
            }
        }
    }

    /// One of `node`'s instances ended: a held one may take its slot.
    fn release_slot(&mut self, node: &str) {
        if let Some(next) = self.slots.release(node) {
            self.graph.ready.insert(next);
        }
    }

    /// A person asked to stop these instances: each running one's loop
    /// ends (stop reason `stopped`); the rest of the apply goes on.
    fn stop_asked(&mut self, keys: &[String]) {
        for l in self.units.launches() {
            if keys.iter().any(|k| **k == *l.key) {
                l.stopped.cancel();
            }
        }
    }

    fn stopping(&mut self, reason: StopReason) {
        self.stop_reason = Some(reason.clone());
        self.emit(&Event::Stopping { reason });
        self.shared.supervisor.raise(StopLevel::Graceful);
    }

    fn drain_events(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.emit(&e);
        }
    }

    /// Starts what can start.
    fn launch(&mut self) {
        if self.stop_reason.is_some() {
            // Held jobs will not start: let them be skipped like the rest.
            let held = self.slots.drain_held();
            self.graph.ready.extend(held);
        }
        while let Some(i) = self.graph.ready.pop_first() {
            self.refresh(i);
            if let Some(reason) = self.stop_reason.clone() {
                self.finish(i, Outcome::skipped(reason));
                continue;
            }
            if matches!(
                self.graph.jobs[i].kind,
                JobKind::Agent(_) | JobKind::Group { .. } | JobKind::Merge(_)
            ) && self.take_over(i)
            {
                continue;
            }
            match self.graph.jobs[i].kind.clone() {
                JobKind::Gate(expr) => {
                    let outcome = self.gate(i, &expr);
                    self.finish(i, outcome);
                }
                JobKind::FanOut(spec) => match fan_out::expand(
                    i,
                    &spec,
                    &mut self.graph,
                    &mut self.fan_outs,
                    &self.shared.program,
                    &self.prior,
                ) {
                    Expansion::Ended(outcome) => self.finish(i, *outcome),
                    Expansion::Became(instances) => {
                        let empty = instances.is_empty();
                        self.emit(&Event::Expanded {
                            key: Arc::clone(&self.graph.jobs[i].key),
                            instances,
                        });
                        if empty {
                            self.finish(i, Outcome::ended(Status::Done, StopReason::NoItems));
                        }
                    }
                },
                JobKind::Group {
                    group,
                    commands,
                    workdir,
                    stop,
                } => {
                    self.slots.take(None);
                    self.graph.state[i] = State::Running;
                    let round = self.rounds.start(i);
                    let result_node = self.shared.program.group(group).result;
                    let result = self
                        .graph
                        .of_node(result_node)
                        .iter()
                        .find_map(|&j| self.graph.outcome(j).cloned());
                    let check = GroupCheck {
                        shared: Arc::clone(&self.shared),
                        commands,
                        workdir,
                        stop,
                        result,
                        round,
                    };
                    let unit = self.launcher.group(check);
                    self.spawn(
                        i,
                        (CancellationToken::new(), CancellationToken::new()),
                        unit,
                    );
                }
                JobKind::Merge(merge) => {
                    self.slots.take(None);
                    self.graph.state[i] = State::Running;
                    let job = &self.graph.jobs[i];
                    self.emit(&Event::InstanceStarted {
                        key: Arc::clone(&job.key),
                        task_id: crate::runner::unit::task_id(&self.shared, job, 1),
                    });
                    let (cancel, stopped) = (CancellationToken::new(), CancellationToken::new());
                    let start = MergeStart {
                        shared: Arc::clone(&self.shared),
                        job: Arc::clone(&self.graph.jobs[i]),
                        sources: fan_out::merge_sources(&self.graph, &self.fan_outs, &merge),
                        merge,
                        events: self.sender.clone(),
                        cancel: cancel.clone(),
                        stopped: stopped.clone(),
                    };
                    let unit = self.launcher.merge(start);
                    self.spawn(i, (cancel, stopped), unit);
                }
                JobKind::Agent(agent) => {
                    let job = Arc::clone(&self.graph.jobs[i]);
                    let shared = Arc::clone(&self.shared);
                    let node = shared.program.node(job.node);
                    if self.slots.full() {
                        self.graph.ready.insert(i);
                        break;
                    }
                    if self.slots.node_full(&node.id, node.max_parallel) {
                        // Released when one of this node's instances ends.
                        self.slots.hold(&node.id, i);
                        continue;
                    }
                    if let Some(writes) = &job.writes
                        && let Some((other, mine, theirs)) = self.slots.writes_overlap(writes)
                    {
                        // Tried again when a writer ends.
                        if self.slots.hold_for_writes(i) {
                            self.emit(&Event::WaitingForWrites {
                                key: Arc::clone(&job.key),
                                other,
                                globs: (mine, theirs),
                            });
                        }
                        continue;
                    }
                    if let Some(writes) = &job.writes {
                        self.slots.start_writing(&job.key, writes);
                    }
                    self.slots.take(Some(&node.id));
                    self.graph.state[i] = State::Running;
                    let cancel = CancellationToken::new();
                    let stopped = CancellationToken::new();
                    let first = self.rounds.first(i);
                    let round = self.rounds.of(i);
                    // Recorded before the unit can start its agent: a
                    // conductor killed at any later moment finds the
                    // instance running, so the next apply resumes it.
                    self.emit(&Event::InstanceStarted {
                        key: Arc::clone(&job.key),
                        task_id: crate::runner::unit::task_id(&self.shared, &job, round),
                    });
                    let start = UnitStart {
                        shared: Arc::clone(&self.shared),
                        launch: Launch {
                            needs: self.needs_value(i),
                            round,
                            group_previous: self.rounds.previous_of(&node.groups),
                            resume: first && job.resumes(&self.prior),
                            merge: fan_out::needs_branches(
                                &self.graph,
                                &self.fan_outs,
                                &self.shared.program,
                                i,
                            ),
                            cancel: cancel.clone(),
                            stopped: stopped.clone(),
                        },
                        job,
                        agent,
                        events: self.sender.clone(),
                    };
                    let unit = self.launcher.unit(start);
                    self.spawn(i, (cancel, stopped), unit);
                }
            }
        }
    }

    /// An agent or group job that need not start: it ended before a
    /// re-plan, it still runs from before one, its key's old unit is still
    /// stopping, or it is up to date. Whether that was so.
    fn take_over(&mut self, i: JobId) -> bool {
        let key = Arc::clone(&self.graph.jobs[i].key);
        match self.replans.take(&key) {
            Some(Taken::Ended(outcome, loud)) => {
                self.settle(i, (*outcome).clone(), loud);
                return true;
            }
            Some(Taken::Running(id)) => {
                // Still running from before the re-plan: wait for it.
                if let Some(l) = self.units.get_mut(id) {
                    l.owner = Owner::Job(i);
                }
                self.graph.state[i] = State::Running;
                return true;
            }
            Some(Taken::Draining) => {
                self.replans.defer(key, i);
                return true;
            }
            None => {}
        }
        if self.rounds.first(i) && self.graph.jobs[i].completed(&self.prior).is_some() {
            self.up_to_date.push_back(i);
            return true;
        }
        false
    }

    /// Settles the next chunk of the jobs found up to date, in the order
    /// found; one whose run store went meanwhile is made ready to run.
    fn settle_up_to_date(&mut self) {
        let n = self.up_to_date.len().min(UP_TO_DATE_CHUNK);
        let chunk: Vec<JobId> = self.up_to_date.drain(..n).collect();
        for i in chunk {
            match self.up_to_date(i, self.answer_read(i)) {
                Some(done) => self.finish(i, done),
                None => {
                    self.graph.ready.insert(i);
                }
            }
        }
    }

    /// Whether job `i`'s answer is read: by a dependent, or by the
    /// sub-workflow it is the result of.
    fn answer_read(&self, i: JobId) -> bool {
        !self.graph.dependents[i].is_empty()
            || self
                .fan_outs
                .parent_of(i)
                .is_some_and(|p| !self.graph.dependents[p].is_empty())
            || !self
                .shared
                .program
                .node(self.graph.jobs[i].node)
                .groups
                .is_empty()
    }

    /// Starts `unit` as job `i`'s.
    fn spawn(
        &mut self,
        i: JobId,
        (cancel, stopped): (CancellationToken, CancellationToken),
        unit: super::super::launcher::UnitFuture,
    ) {
        let job = &self.graph.jobs[i];
        let launched = Launched {
            owner: Owner::Job(i),
            key: Arc::clone(&job.key),
            node: self.shared.program.node(job.node).id.clone(),
            slot: matches!(job.kind, JobKind::Agent(_)),
            fingerprint: Arc::clone(&job.fingerprint),
            cancel,
            stopped,
        };
        self.units.spawn(launched, unit);
    }

    /// Takes the final fingerprints of `i`'s needs into its own: an
    /// upstream instance that completed with its inputs changed by its
    /// own agent hands on the fingerprint it completed with.
    fn refresh(&mut self, i: JobId) {
        let upstream: BTreeMap<String, String> = self.graph.jobs[i]
            .needs
            .iter()
            .filter_map(|&n| {
                self.final_hash(n)
                    .map(|h| (self.graph.jobs[n].key.to_string(), h))
            })
            .collect();
        let fp = self.graph.jobs[i].fingerprint.with_upstream(upstream);
        if fp.hash != self.graph.jobs[i].fingerprint.hash {
            Arc::make_mut(&mut self.graph.jobs[i]).fingerprint = Arc::new(fp);
        }
    }

    /// The fingerprint a finished job ended with; for an expanded fan-out,
    /// its own combined with its instances'.
    fn final_hash(&self, n: JobId) -> Option<String> {
        let ended = |j: JobId| {
            self.graph.outcome(j).map(|o| {
                o.fingerprint.as_ref().map_or_else(
                    || self.graph.jobs[j].fingerprint.hash.clone(),
                    |f| f.hash.clone(),
                )
            })
        };
        let own = ended(n)?;
        match self.fan_outs.children_of(n) {
            Some(children) => {
                let hashes: Vec<String> = children.iter().filter_map(|&c| ended(c)).collect();
                Some(crate::incremental::fingerprint::combined(
                    &self.graph.jobs[n].fingerprint.hash,
                    &hashes,
                ))
            }
            None => Some(own),
        }
    }

    /// `i`'s outcome when its latest completed run is up to date; its
    /// answer is read back from the run store only when `read` says
    /// something will read it.
    fn up_to_date(&self, i: JobId, read: bool) -> Option<Outcome> {
        let job = &self.graph.jobs[i];
        let completed = job.completed(&self.prior)?;
        let status = if completed.failed {
            Status::Failed
        } else {
            Status::Done
        };
        let mut out = Outcome::ended(status, StopReason::UpToDate);
        out.iterations = completed.iterations;
        out.result_stop_reason = Some(completed.stop_reason.clone()).filter(|r| !r.is_empty());
        out.task_id = Some(completed.task_id.clone());
        out.run_id.clone_from(&completed.run_id);
        if read
            && let JobKind::Agent(agent) = &job.kind
            && let Some(answer) = completed.answer()
        {
            if agent.json {
                out.json = crate::agents::answer::extract_json(&answer);
            }
            out.output = answer;
        }
        if read && let JobKind::Merge(_) = &job.kind {
            let report =
                crate::store::layout::TaskDir::at(completed.task_dir.clone()).merge_report();
            out.json = std::fs::read(report)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            out.merge = out.json.clone().map(Box::new);
        }
        out.task_dir = Some(completed.task_dir);
        Some(out)
    }

    /// Marks `i` terminal and releases (or skips) its dependents.
    fn finish(&mut self, i: JobId, outcome: Outcome) {
        self.settle(i, outcome, true);
    }

    /// As [`Self::finish`]; `loud: false` for an end already recorded (an
    /// instance kept across a re-plan). What it makes terminal in turn
    /// (skipped dependents, a fan-out whose last instance it was) is
    /// settled depth first from a stack, in the order a recursion would,
    /// so a long chain of skips is a loop rather than a deep call stack.
    fn settle(&mut self, i: JobId, outcome: Outcome, loud: bool) {
        let mut stack = vec![Settle {
            job: i,
            outcome,
            loud,
            own: true,
        }];
        while let Some(Settle {
            job: i,
            outcome,
            loud,
            own,
        }) = stack.pop()
        {
            let outcome = Arc::new(outcome);
            self.graph.state[i] = State::Finished(Arc::clone(&outcome));
            if !own {
                // A fan-out whose instances all ended: terminal without an
                // event of its own.
                self.release_dependents(i, &mut stack);
                continue;
            }
            if loud {
                self.emit(&Event::InstanceFinished {
                    key: Arc::clone(&self.graph.jobs[i].key),
                    outcome: Arc::clone(&outcome),
                });
            }
            // A failure a gate tolerated before (up to date) is not news:
            // the gate decides again.
            if outcome.status == Status::Failed
                && outcome.stop_reason != StopReason::UpToDate
                && self.graph.jobs[i].on_failure != OnFailure::Ignore
                && self.fail_fast
                && self.stop_reason.is_none()
            {
                self.stopping(StopReason::FailFast);
            }
            // A run store that cannot be written (a full disk) fails every
            // run after it: nothing more is started.
            if outcome.stop_reason == StopReason::StoreError && self.stop_reason.is_none() {
                self.stopping(StopReason::StoreError);
            }
            let parent = self.fan_outs.parent_of(i);
            if self.graph.jobs[i].forced && outcome.status == Status::Done {
                self.force_downstream(i, parent);
            }
            self.release_dependents(i, &mut stack);
            // The fan-out it completes is settled before its dependents.
            if let Some(p) = parent
                && let Some(whole) = self
                    .fan_outs
                    .child_ended(p, outcome.status == Status::Failed)
            {
                stack.push(Settle {
                    job: p,
                    outcome: whole,
                    loud: false,
                    own: false,
                });
            }
        }
    }

    /// What a forced run feeds is forced too (`--force X` re-runs X's
    /// dependents, even when X answers as before).
    fn force_downstream(&mut self, i: JobId, parent: Option<JobId>) {
        let mut downstream = self.graph.dependents[i].clone();
        if let Some(p) = parent {
            downstream.extend(self.graph.dependents[p].iter().copied());
        }
        for d in downstream {
            if !self.graph.jobs[d].forced {
                Arc::make_mut(&mut self.graph.jobs[d]).forced = true;
            }
        }
    }

    /// `i` is terminal: each dependent whose needs all are now is skipped
    /// (pushed to be settled, first dependent on top) or made ready.
    fn release_dependents(&mut self, i: JobId, stack: &mut Vec<Settle>) {
        let mut skipped = Vec::new();
        for d in self.graph.dependents[i].clone() {
            if !self.graph.need_ended(d) {
                continue;
            }
            match self.graph.blocked_by(d) {
                Some(need) => skipped.push(Settle {
                    job: d,
                    outcome: Outcome::skipped(StopReason::Skipped { need }),
                    loud: true,
                    own: true,
                }),
                None => {
                    self.graph.ready.insert(d);
                }
            }
        }
        stack.extend(skipped.into_iter().rev());
    }

    /// Records `event` on the project bus and hands it to the observer.
    fn emit(&mut self, event: &Event) {
        self.out.emit(event, &self.shared, &self.graph);
    }

    /// `needs` as job `i`'s templates see it.
    fn needs_value(&self, i: JobId) -> minijinja::Value {
        fan_out::needs_value(&self.graph, &self.fan_outs, &self.shared.program, i)
    }

    /// A watch's new plan: kept instances go on, changed running ones are
    /// stopped, and the new jobs take the place of the old.
    fn control(&mut self, control: Control) {
        let Control::Replan {
            jobs,
            program,
            success,
            why,
        } = control;
        if self.stop_reason.is_some() {
            return;
        }
        // Found up to date in the old plan: the new one decides again.
        self.up_to_date.clear();
        self.prior.look_again();
        let restarted = replan::replan(
            &mut self.replans,
            &mut self.units,
            &self.graph,
            &self.rounds,
            &jobs,
        );
        let mut shared = (*self.shared).clone();
        shared.program = program;
        shared.success = success;
        self.shared = Arc::new(shared);
        self.graph = JobGraph::new(jobs);
        self.fan_outs = FanOuts::default();
        self.rounds = Rounds::default();
        // Units keep running under their launch numbers.
        let slots: Vec<String> = self
            .units
            .launches()
            .filter(|l| l.owner == Owner::Adopted && l.slot)
            .map(|l| l.node.clone())
            .collect();
        self.slots
            .recount(self.units.len(), slots.iter().map(String::as_str));
        let will_run = self
            .graph
            .jobs
            .values()
            .filter(|job| {
                matches!(job.kind, JobKind::Agent(_) | JobKind::Group { .. })
                    && !self.replans.keeps(&job.key)
                    && !restarted.contains(&job.key)
                    && job.completed(&self.prior).is_none()
            })
            .map(|job| Arc::clone(&job.key))
            .collect();
        self.emit(&Event::Replanned {
            why,
            restarted,
            will_run,
        });
    }

    fn gate(&self, i: JobId, expr: &str) -> Outcome {
        let job = &self.graph.jobs[i];
        let node = self.shared.program.node(job.node);
        let scope = &self.shared.program.scopes[node.scope];
        let ctx = context! {
            needs => self.needs_value(i),
            params => crate::prompt::context(&serde_json::Value::Object(scope.params.clone())),
            item => job.item.as_ref().map(crate::prompt::context),
        };
        match scope
            .templates
            .compile_expression(expr)
            .and_then(|e| e.eval(ctx))
        {
            Ok(v) if v.is_true() => Outcome::ended(Status::Done, StopReason::GateTrue),
            Ok(_) => Outcome::ended(Status::Failed, StopReason::GateFalse),
            Err(e) => {
                let mut o = Outcome::ended(Status::Failed, StopReason::GateError);
                o.error = Some(format!("{e:#}"));
                o
            }
        }
    }
}
