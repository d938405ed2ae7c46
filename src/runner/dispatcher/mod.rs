//! Owns all run state of an apply (docs/architecture.md: one owner, units
//! talk to it by messages). It starts each instance when its needs are
//! terminal and a slot is free (globally and per node), evaluates gates,
//! expands run-time fan-out when its source is done, skips the dependents
//! of failures, stops everything on Ctrl-C or `--fail-fast`, skips what is
//! up to date, and turns every event into a project-bus record and a
//! reporter call. Run-time fan-out, looping sub-workflows, a watch's
//! re-plans and the records live in the submodules.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use minijinja::{Value, context};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

mod fan_out;
mod groups;
mod records;
mod replan;

use super::context::Shared;
use super::event::{Event, Observer};
use super::job::{Job, JobKind};
use super::outcome::{Outcome, Status};
use super::summary::InstanceSummary;
use crate::bus::BusWriter;
use crate::incremental::fingerprint::Fingerprint;
use crate::incremental::prior::Prior;
use crate::model::OnFailure;
use crate::process::StopLevel;
use crate::stop_reason::StopReason;

#[derive(Debug, Clone)]
enum State {
    Waiting,
    Running,
    /// A run-time fan-out that became jobs (listed in `expanded`).
    Expanded,
    Finished(Arc<Outcome>),
}

/// Options of one execution.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_parallel: usize,
    pub fail_fast: bool,
}

/// A watch's message to a running apply.
#[derive(Debug)]
pub enum Control {
    /// The files changed: run this plan from now on.
    Replan {
        jobs: Vec<Job>,
        program: Arc<crate::compile::Program>,
        success: Arc<Vec<crate::plan::SuccessCommand>>,
        /// What changed, for the line the console prints.
        why: String,
    },
}

/// An instance before a re-plan: the fingerprint it ended (or runs) with,
/// and its outcome when it ended.
type Before = (Arc<Fingerprint>, Option<Arc<Outcome>>);

/// The next control message, or never when there is no control channel.
async fn next_control(control: Option<&mut mpsc::UnboundedReceiver<Control>>) -> Option<Control> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Whose a running unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Job(usize),
    /// Kept by a re-plan; its new job is found when that job is reached.
    Adopted,
    /// Invalidated by a re-plan, being stopped.
    Invalidated,
}

/// A unit that is running.
#[derive(Debug)]
struct Launched {
    job: Slot,
    key: Arc<str>,
    /// Its program node's id (node indices change with a re-plan).
    node: String,
    /// It holds a slot of its node's `max_parallel` (agent units do).
    slot: bool,
    fingerprint: Arc<Fingerprint>,
    cancel: tokio_util::sync::CancellationToken,
}

pub struct Dispatcher<'a> {
    shared: Arc<Shared>,
    jobs: Vec<Arc<Job>>,
    state: Vec<State>,
    dependents: Vec<Vec<usize>>,
    waiting: Vec<usize>,
    /// For each program node, its jobs in item order.
    by_node: Vec<Vec<usize>>,
    /// The fan-out placeholder each expanded job belongs to.
    parent: HashMap<usize, usize>,
    /// The jobs each run-time fan-out became.
    expanded: HashMap<usize, Vec<usize>>,
    /// Ready jobs waiting for a slot of their node's `max_parallel`.
    held: HashMap<usize, std::collections::VecDeque<usize>>,
    /// A fan-out's instances not yet ended, and the fan-outs with a failed one.
    unfinished: HashMap<usize, usize>,
    child_failed: std::collections::HashSet<usize>,
    /// Instance key to job index (the latest job with that key).
    by_key: HashMap<Arc<str>, usize>,
    /// Jobs of an earlier round of a looping sub-workflow's fan-out.
    retired: std::collections::HashSet<usize>,
    /// A looping sub-workflow's group job: its current round and first start.
    rounds: HashMap<usize, (u32, std::time::Instant)>,
    /// The round each inner job is in (1 when absent).
    job_round: HashMap<usize, u32>,
    /// By program group: the previous round's result, as `previous`.
    group_previous: HashMap<usize, Value>,
    ready: BTreeSet<usize>,
    running: usize,
    per_node: HashMap<usize, u32>,
    limits: Limits,
    units: JoinSet<(u64, Outcome)>,
    /// Units running, by launch number (a unit outlives a re-plan).
    launches: HashMap<u64, Launched>,
    next_launch: u64,
    /// A watch's new plans, while this apply runs.
    control: Option<&'a mut mpsc::UnboundedReceiver<Control>>,
    /// Kept across a re-plan: instances already ended, by key (ended
    /// before the re-plan: recorded already, so not announced again).
    carried: HashMap<Arc<str>, (Arc<Outcome>, bool)>,
    /// Kept across a re-plan: units still running, by key.
    adopted: HashMap<Arc<str>, u64>,
    /// Keys whose invalidated unit is still stopping; a new run of the
    /// same key waits for it (they would share a task folder).
    draining: std::collections::HashSet<Arc<str>>,
    deferred: HashMap<Arc<str>, usize>,
    events: mpsc::UnboundedReceiver<Event>,
    sender: mpsc::UnboundedSender<Event>,
    stop: Arc<watch::Sender<StopLevel>>,
    observer: &'a mut dyn Observer,
    bus: Option<BusWriter>,
    stop_reason: Option<StopReason>,
    /// Earlier applies' records: what is up to date, what resumes.
    prior: Prior,
}

impl std::fmt::Debug for Dispatcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("jobs", &self.jobs.len())
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl<'a> Dispatcher<'a> {
    pub fn new(
        shared: Arc<Shared>,
        jobs: Vec<Job>,
        limits: Limits,
        stop: Arc<watch::Sender<StopLevel>>,
        observer: &'a mut dyn Observer,
        prior: Prior,
        control: Option<&'a mut mpsc::UnboundedReceiver<Control>>,
    ) -> Self {
        let (sender, events) = mpsc::unbounded_channel();
        let bus = match BusWriter::open(&shared.project_dir.join("PROJECT-MESSAGE-BUS.md")) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        let mut d = Self {
            shared,
            jobs: Vec::new(),
            state: Vec::new(),
            dependents: Vec::new(),
            waiting: Vec::new(),
            by_node: Vec::new(),
            parent: HashMap::new(),
            expanded: HashMap::new(),
            by_key: HashMap::new(),
            held: HashMap::new(),
            unfinished: HashMap::new(),
            child_failed: std::collections::HashSet::new(),
            retired: std::collections::HashSet::new(),
            rounds: HashMap::new(),
            job_round: HashMap::new(),
            group_previous: HashMap::new(),
            ready: BTreeSet::new(),
            running: 0,
            per_node: HashMap::new(),
            limits,
            units: JoinSet::new(),
            launches: HashMap::new(),
            next_launch: 0,
            control,
            carried: HashMap::new(),
            adopted: HashMap::new(),
            draining: std::collections::HashSet::new(),
            deferred: HashMap::new(),
            events,
            sender,
            stop,
            observer,
            bus,
            stop_reason: None,
            prior,
        };
        d.reset(jobs);
        d
    }

    /// Puts `jobs` in place of whatever was planned, all waiting.
    fn reset(&mut self, jobs: Vec<Job>) {
        let n = jobs.len();
        let mut dependents = vec![Vec::new(); n];
        let mut by_node = vec![Vec::new(); self.shared.program.nodes.len()];
        for (i, job) in jobs.iter().enumerate() {
            for &need in &job.needs {
                dependents[need].push(i);
            }
            by_node[job.node].push(i);
        }
        self.waiting = jobs.iter().map(|j| j.needs.len()).collect();
        self.ready = (0..n).filter(|&i| self.waiting[i] == 0).collect();
        self.by_key = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (Arc::clone(&j.key), i))
            .collect();
        self.jobs = jobs.into_iter().map(Arc::new).collect();
        self.state = vec![State::Waiting; n];
        self.dependents = dependents;
        self.by_node = by_node;
        self.parent.clear();
        self.expanded.clear();
        self.held.clear();
        self.unfinished.clear();
        self.child_failed.clear();
        self.retired.clear();
        self.rounds.clear();
        self.job_round.clear();
        self.group_previous.clear();
    }

    /// Runs every job to a terminal state; returns their summaries in plan
    /// order, why the apply was stopped (if it was), and the `Shared` in
    /// force at the end (a re-plan replaces it).
    pub async fn run(mut self) -> (Vec<InstanceSummary>, Option<StopReason>, Arc<Shared>) {
        self.emit(Event::WorkflowStarted {
            apply_id: self.shared.apply_id.clone(),
            workflow: self.shared.workflow.clone(),
            instances: self.jobs.len(),
            project_dir: self.shared.project_dir.clone(),
        });
        let mut stop_rx = self.shared.supervisor.subscribe();
        loop {
            self.launch();
            if self.running == 0 && self.ready.is_empty() {
                break;
            }
            tokio::select! {
                Some(joined) = self.units.join_next() => match joined {
                    Ok((id, outcome)) => self.unit_ended(id, outcome),
                    Err(e) => tracing::error!("a unit panicked: {e}"),
                },
                Some(control) = next_control(self.control.as_deref_mut()) => self.control(control),
                Some(event) = self.events.recv() => self.emit(event),
                Ok(()) = stop_rx.changed() => {
                    let level = *stop_rx.borrow();
                    if level > StopLevel::Running && self.stop_reason.is_none() {
                        self.stopping(StopReason::Interrupted);
                    }
                }
            }
        }
        self.drain_events();
        let summaries = self.summaries();
        (summaries, self.stop_reason, self.shared)
    }

    /// A unit ended: its job goes on, or (invalidated by a re-plan) a new
    /// run of its key may start now.
    fn unit_ended(&mut self, id: u64, outcome: Outcome) {
        let Some(launched) = self.launches.remove(&id) else {
            return;
        };
        self.running -= 1;
        self.drain_events();
        let i = match launched.job {
            Slot::Job(i) => i,
            Slot::Invalidated => {
                self.draining.remove(&launched.key);
                if let Some(j) = self.deferred.remove(&launched.key) {
                    self.ready.insert(j);
                }
                return;
            }
            Slot::Adopted => usize::MAX,
        };
        if i == usize::MAX {
            // Kept by a re-plan and ended before its new job was reached.
            self.adopted.remove(&launched.key);
            let mut outcome = outcome;
            // Its fingerprint goes with it, in case another re-plan comes first.
            outcome
                .fingerprint
                .get_or_insert_with(|| Arc::clone(&launched.fingerprint));
            self.carried.insert(launched.key, (Arc::new(outcome), true));
            if launched.slot {
                self.release_slot(&launched.node);
            }
            return;
        }
        if let JobKind::Group { .. } = self.jobs[i].kind {
            self.group_ended(i, outcome);
        } else {
            self.release_slot(&launched.node);
            self.finish(i, outcome);
        }
    }

    /// One of `node`'s instances ended: a held one may take its slot.
    fn release_slot(&mut self, node_id: &str) {
        let Some(node) = self
            .shared
            .program
            .nodes
            .iter()
            .position(|n| n.id == node_id)
        else {
            return;
        };
        if let Some(c) = self.per_node.get_mut(&node) {
            *c = c.saturating_sub(1);
        }
        if let Some(next) = self
            .held
            .get_mut(&node)
            .and_then(std::collections::VecDeque::pop_front)
        {
            self.ready.insert(next);
        }
    }

    /// Starts `i`'s unit (`unit` is its future).
    fn spawn_unit(
        &mut self,
        i: usize,
        cancel: tokio_util::sync::CancellationToken,
        unit: impl std::future::Future<Output = Outcome> + Send + 'static,
    ) {
        let id = self.next_launch;
        self.next_launch += 1;
        let job = &self.jobs[i];
        self.launches.insert(
            id,
            Launched {
                job: Slot::Job(i),
                key: Arc::clone(&job.key),
                node: self.shared.program.nodes[job.node].id.clone(),
                slot: matches!(job.kind, JobKind::Agent(_)),
                fingerprint: Arc::clone(&job.fingerprint),
                cancel,
            },
        );
        self.units.spawn(async move { (id, unit.await) });
    }

    fn stopping(&mut self, reason: StopReason) {
        self.stop_reason = Some(reason.clone());
        self.emit(Event::Stopping { reason });
        self.stop.send_if_modified(|l| {
            if *l == StopLevel::Running {
                *l = StopLevel::Graceful;
                true
            } else {
                false
            }
        });
    }

    fn drain_events(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.emit(e);
        }
    }

    /// Starts what can start.
    fn launch(&mut self) {
        if self.stop_reason.is_some() {
            // Held jobs will not start: let them be skipped like the rest.
            let held: Vec<usize> = self.held.drain().flat_map(|(_, q)| q).collect();
            self.ready.extend(held);
        }
        while let Some(i) = self.ready.pop_first() {
            self.refresh(i);
            if let Some(reason) = self.stop_reason.clone() {
                self.finish(i, Outcome::skipped(reason));
                continue;
            }
            if matches!(self.jobs[i].kind, JobKind::Agent(_) | JobKind::Group { .. }) {
                let key = Arc::clone(&self.jobs[i].key);
                if let Some((outcome, loud)) = self.carried.remove(&key) {
                    self.settle(i, (*outcome).clone(), loud);
                    continue;
                }
                if let Some(id) = self.adopted.remove(&key) {
                    // Still running from before the re-plan: wait for it.
                    if let Some(l) = self.launches.get_mut(&id) {
                        l.job = Slot::Job(i);
                    }
                    self.state[i] = State::Running;
                    continue;
                }
                if self.draining.contains(&key) {
                    self.deferred.insert(key, i);
                    continue;
                }
                // Its answer is read back only for whoever reads it: a
                // dependent, or the sub-workflow it is the result of.
                let read = !self.dependents[i].is_empty()
                    || self
                        .parent
                        .get(&i)
                        .is_some_and(|&p| !self.dependents[p].is_empty())
                    || !self.shared.program.nodes[self.jobs[i].node]
                        .groups
                        .is_empty();
                if self.first_round(i)
                    && let Some(done) = self.up_to_date(i, read)
                {
                    self.finish(i, done);
                    continue;
                }
            }
            match self.jobs[i].kind.clone() {
                JobKind::Gate(expr) => {
                    let outcome = self.gate(i, &expr);
                    self.finish(i, outcome);
                }
                JobKind::FanOut { .. } => self.expand(i),
                JobKind::Group {
                    group,
                    commands,
                    workdir,
                    stop,
                } => {
                    self.running += 1;
                    self.state[i] = State::Running;
                    let round = self
                        .rounds
                        .entry(i)
                        .or_insert((1, std::time::Instant::now()))
                        .0;
                    let result_node = self.shared.program.groups[group].result;
                    let result =
                        self.by_node[result_node]
                            .iter()
                            .find_map(|&j| match &self.state[j] {
                                State::Finished(o) => Some(Arc::clone(o)),
                                _ => None,
                            });
                    let shared = Arc::clone(&self.shared);
                    self.spawn_unit(i, tokio_util::sync::CancellationToken::new(), async move {
                        super::group::judge(shared, commands, &workdir, stop, result, round).await
                    });
                }
                JobKind::Agent(agent) => {
                    let node = self.jobs[i].node;
                    let cap = self.shared.program.nodes[node].max_parallel;
                    let busy = self.per_node.get(&node).copied().unwrap_or(0);
                    if self.running >= self.limits.max_parallel {
                        self.ready.insert(i);
                        break;
                    }
                    if cap.is_some_and(|c| busy >= c) {
                        // Released when one of this node's instances ends.
                        self.held.entry(node).or_default().push_back(i);
                        continue;
                    }
                    self.running += 1;
                    *self.per_node.entry(node).or_default() += 1;
                    self.state[i] = State::Running;
                    let cancel = tokio_util::sync::CancellationToken::new();
                    let launch = super::unit::Launch {
                        needs: self.needs_value(i),
                        round: self.job_round.get(&i).copied().unwrap_or(1),
                        group_previous: self.group_previous_of(i),
                        resume: self.first_round(i) && self.jobs[i].resumes(&self.prior),
                        cancel: cancel.clone(),
                    };
                    let shared = Arc::clone(&self.shared);
                    let job = Arc::clone(&self.jobs[i]);
                    let sender = self.sender.clone();
                    self.spawn_unit(
                        i,
                        cancel,
                        super::unit::run(shared, job, agent, launch, sender),
                    );
                }
            }
        }
    }

    /// Takes the final fingerprints of `i`'s needs into its own: an
    /// upstream instance that completed with its inputs changed by its
    /// own agent hands on the fingerprint it completed with.
    fn refresh(&mut self, i: usize) {
        let upstream: std::collections::BTreeMap<String, String> = self.jobs[i]
            .needs
            .iter()
            .filter_map(|&n| {
                self.final_hash(n)
                    .map(|h| (self.jobs[n].key.to_string(), h))
            })
            .collect();
        let fp = self.jobs[i].fingerprint.with_upstream(upstream);
        if fp.hash != self.jobs[i].fingerprint.hash {
            Arc::make_mut(&mut self.jobs[i]).fingerprint = Arc::new(fp);
        }
    }

    /// The fingerprint a finished job ended with.
    fn final_hash(&self, n: usize) -> Option<String> {
        let State::Finished(o) = &self.state[n] else {
            return None;
        };
        if let Some(children) = self.expanded.get(&n) {
            let hashes: Vec<String> = children
                .iter()
                .filter_map(|&c| self.final_hash(c))
                .collect();
            return Some(crate::incremental::fingerprint::combined(
                &self.jobs[n].fingerprint.hash,
                &hashes,
            ));
        }
        Some(
            o.fingerprint
                .as_ref()
                .map_or_else(|| self.jobs[n].fingerprint.hash.clone(), |f| f.hash.clone()),
        )
    }

    /// `i`'s outcome when its latest completed run is up to date; its
    /// answer is read back from the run store only when `read` says
    /// something will read it.
    fn up_to_date(&self, i: usize, read: bool) -> Option<Outcome> {
        let job = &self.jobs[i];
        let completed = job.completed(&self.prior)?;
        let mut out = Outcome::ended(Status::Done, StopReason::UpToDate);
        out.iterations = completed.iterations;
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
        out.task_dir = Some(completed.task_dir);
        Some(out)
    }

    /// Whether `i` runs for the first time in this apply (not a later round
    /// of a looping sub-workflow): only then may it be up to date or resume.
    fn first_round(&self, i: usize) -> bool {
        self.job_round.get(&i).is_none_or(|&r| r <= 1)
            && self.rounds.get(&i).is_none_or(|r| r.0 <= 1)
    }

    /// Marks `i` terminal and releases (or skips) its dependents.
    fn finish(&mut self, i: usize, outcome: Outcome) {
        self.settle(i, outcome, true);
    }

    /// As [`Self::finish`]; `loud: false` for an end already recorded
    /// (an instance kept across a re-plan).
    fn settle(&mut self, i: usize, outcome: Outcome, loud: bool) {
        let outcome = Arc::new(outcome);
        self.state[i] = State::Finished(Arc::clone(&outcome));
        if loud {
            self.emit(Event::InstanceFinished {
                key: Arc::clone(&self.jobs[i].key),
                outcome: Arc::clone(&outcome),
            });
        }
        if outcome.status == Status::Failed
            && self.jobs[i].on_failure != OnFailure::Ignore
            && self.limits.fail_fast
            && self.stop_reason.is_none()
        {
            self.stopping(StopReason::FailFast);
        }
        // What a forced run feeds is forced too (`--force X` re-runs X's
        // dependents, even when X answers as before).
        if self.jobs[i].forced && outcome.status == Status::Done {
            let parent = self.parent.get(&i).copied();
            let mut downstream = self.dependents[i].clone();
            if let Some(p) = parent {
                downstream.extend(self.dependents[p].iter().copied());
            }
            for d in downstream {
                if !self.jobs[d].forced {
                    Arc::make_mut(&mut self.jobs[d]).forced = true;
                }
            }
        }
        if let Some(&p) = self.parent.get(&i) {
            let left = self.unfinished.entry(p).or_insert(1);
            *left -= 1;
            if outcome.status == Status::Failed {
                self.child_failed.insert(p);
            }
            if *left == 0 {
                let whole = if self.child_failed.contains(&p) {
                    Outcome::ended(Status::Failed, StopReason::InstanceFailed)
                } else {
                    Outcome::ended(Status::Done, StopReason::Done)
                };
                self.settle_parent(p, whole);
            }
        }
        for d in self.dependents[i].clone() {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.resolve(d);
            }
        }
    }

    /// A fan-out whose instances all ended: terminal without an event of its own.
    fn settle_parent(&mut self, p: usize, outcome: Outcome) {
        self.state[p] = State::Finished(Arc::new(outcome));
        for d in self.dependents[p].clone() {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.resolve(d);
            }
        }
    }

    /// All of `d`'s needs are terminal: skip it, or make it ready.
    fn resolve(&mut self, d: usize) {
        let gate = matches!(self.jobs[d].kind, JobKind::Gate(_));
        let blocked = self.jobs[d]
            .needs
            .iter()
            .find_map(|&n| match &self.state[n] {
                State::Finished(o)
                    if o.status == Status::Skipped
                        || (o.status == Status::Failed
                            && self.jobs[n].on_failure == OnFailure::Fail) =>
                {
                    Some(self.jobs[n].key.clone())
                }
                _ => None,
            });
        match blocked {
            Some(key) if !gate => {
                self.finish(d, Outcome::skipped(StopReason::Skipped { need: key }));
            }
            _ => {
                self.ready.insert(d);
            }
        }
    }

    fn gate(&self, i: usize, expr: &str) -> Outcome {
        let node = &self.shared.program.nodes[self.jobs[i].node];
        let scope = &self.shared.program.scopes[node.scope];
        let ctx = context! {
            needs => self.needs_value(i),
            params => crate::prompt::context(&serde_json::Value::Object(scope.params.clone())),
            item => self.jobs[i].item.as_ref().map(crate::prompt::context),
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

    fn emit(&mut self, event: Event) {
        self.record(&event);
        self.observer.event(&event);
        drop(event);
    }
}
