//! Owns all run state of an apply (reference/anchors.md: one owner, units
//! talk to it by messages). It starts each instance when its needs are
//! terminal and a slot is free (globally and per node), evaluates gates,
//! expands run-time fan-out when its source is done, skips the dependents
//! of failures, stops everything on Ctrl-C or `--fail-fast`, and turns every
//! event into a project-bus record and a reporter call.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use minijinja::{Value, context};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::context::{Shared, StopLevel, item_text};
use super::event::Event;
use super::job::{Job, JobKind};
use super::outcome::{Outcome, Status, at_path};
use super::summary::InstanceSummary;
use crate::bus::{BusWriter, NewMessage};
use crate::model::{ForEach, OnFailure};

/// Receives every event, in order (the console reporter).
pub trait Observer {
    fn event(&mut self, event: &Event);
}

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
type Before = (Arc<super::fingerprint::Fingerprint>, Option<Arc<Outcome>>);

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
    fingerprint: Arc<super::fingerprint::Fingerprint>,
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
    stop_reason: Option<String>,
    /// Earlier applies' records: what is up to date, what resumes.
    prior: super::prior::Prior,
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
        prior: super::prior::Prior,
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
    pub async fn run(mut self) -> (Vec<InstanceSummary>, Option<String>, Arc<Shared>) {
        self.emit(Event::WorkflowStarted {
            apply_id: self.shared.apply_id.clone(),
            workflow: self.shared.workflow.clone(),
            instances: self.jobs.len(),
            project_dir: self.shared.project_dir.clone(),
        });
        let mut stop_rx = self.shared.stop.clone();
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
                        self.stopping("interrupted");
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
        let restarted = self.replan(jobs, program, success);
        let will_run = (0..self.jobs.len())
            .filter(|&i| {
                let job = &self.jobs[i];
                matches!(job.kind, JobKind::Agent(_) | JobKind::Group { .. })
                    && !self.carried.contains_key(&job.key)
                    && !self.adopted.contains_key(&job.key)
                    && !restarted.contains(&job.key)
                    && self.prior.up_to_date(job).is_none()
            })
            .map(|i| Arc::clone(&self.jobs[i].key))
            .collect();
        self.emit(Event::Replanned {
            why,
            restarted,
            will_run,
        });
    }

    /// Swaps in a watch's new plan. Instances whose definition, inputs and
    /// upstream are unchanged are kept (ended ones with their outcome,
    /// running ones go on running); running ones that changed are stopped
    /// and run again under the new plan. Returns the keys stopped.
    fn replan(
        &mut self,
        jobs: Vec<Job>,
        program: Arc<crate::compile::Program>,
        success: Arc<Vec<crate::plan::SuccessCommand>>,
    ) -> Vec<Arc<str>> {
        // What the old state ended (or runs) with, by key.
        let mut old: HashMap<Arc<str>, Before> = HashMap::new();
        for (key, (outcome, _)) in &self.carried {
            if let Some(fp) = &outcome.fingerprint {
                old.insert(Arc::clone(key), (Arc::clone(fp), Some(Arc::clone(outcome))));
            }
        }
        for i in 0..self.jobs.len() {
            if self.retired.contains(&i) {
                continue;
            }
            let job = &self.jobs[i];
            match &self.state[i] {
                State::Finished(o) => {
                    let fp = o
                        .fingerprint
                        .clone()
                        .unwrap_or_else(|| Arc::clone(&job.fingerprint));
                    let mut o = (**o).clone();
                    o.fingerprint = Some(Arc::clone(&fp));
                    old.insert(Arc::clone(&job.key), (fp, Some(Arc::new(o))));
                }
                State::Expanded => {
                    old.insert(Arc::clone(&job.key), (Arc::clone(&job.fingerprint), None));
                }
                State::Running | State::Waiting => {}
            }
        }
        for l in self
            .launches
            .values()
            .filter(|l| l.job != Slot::Invalidated)
        {
            old.insert(Arc::clone(&l.key), (Arc::clone(&l.fingerprint), None));
        }
        // Kept: the same definition, and everything it needs kept.
        let mut keep = vec![false; jobs.len()];
        let running: std::collections::HashSet<Arc<str>> = self
            .launches
            .values()
            .filter(|l| l.job != Slot::Invalidated)
            .map(|l| Arc::clone(&l.key))
            .collect();
        for i in super::fingerprint::topological(&jobs) {
            let job = &jobs[i];
            let Some((was, _)) = old.get(&job.key) else {
                continue;
            };
            let now = &job.fingerprint;
            keep[i] = job.needs.iter().all(|&n| keep[n])
                && was.parts == now.parts
                && was.templates == now.templates
                && (running.contains(&job.key) || was.inputs == now.inputs);
        }
        let kept: std::collections::HashSet<Arc<str>> = jobs
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(j, _)| Arc::clone(&j.key))
            .collect();
        // Run-time instances are kept with their fan-out.
        let kept_child = |key: &str| {
            key.split_once('[')
                .is_some_and(|(node, _)| kept.iter().any(|k| k.strip_suffix("[*]") == Some(node)))
        };
        let mut carried = HashMap::new();
        for (key, (_, outcome)) in old {
            if let Some(o) = outcome
                && (kept.contains(&key) || kept_child(&key))
            {
                carried.insert(key, (o, false));
            }
        }
        let mut restarted = Vec::new();
        let mut adopted = HashMap::new();
        for (id, l) in &mut self.launches {
            if l.job == Slot::Invalidated {
                continue;
            }
            if kept.contains(&l.key) || kept_child(&l.key) {
                adopted.insert(Arc::clone(&l.key), *id);
                l.job = Slot::Adopted;
            } else {
                l.cancel.cancel();
                l.job = Slot::Invalidated;
                self.draining.insert(Arc::clone(&l.key));
                restarted.push(Arc::clone(&l.key));
            }
        }
        // The new state; units keep running under their launch numbers.
        let mut shared = (*self.shared).clone();
        shared.program = program;
        shared.success = success;
        self.shared = Arc::new(shared);
        self.reset(jobs);
        self.carried = carried;
        self.adopted = adopted;
        self.deferred.clear();
        self.running = self.launches.len();
        self.per_node.clear();
        for l in self
            .launches
            .values()
            .filter(|l| l.job == Slot::Adopted && l.slot)
        {
            if let Some(n) = self
                .shared
                .program
                .nodes
                .iter()
                .position(|n| n.id == l.node)
            {
                *self.per_node.entry(n).or_default() += 1;
            }
        }
        restarted.sort();
        restarted
    }

    fn stopping(&mut self, reason: &str) {
        self.stop_reason = Some(reason.to_string());
        self.emit(Event::Stopping {
            reason: reason.to_string(),
        });
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
                if self.first_round(i)
                    && let Some(done) = self.prior.up_to_date(&self.jobs[i])
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
                        resume: self.first_round(i) && self.prior.resumes(&self.jobs[i]),
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

    /// A group job's round ended: finish it, or run its inner instances again.
    fn group_ended(&mut self, i: usize, outcome: Outcome) {
        let JobKind::Group { group, stop, .. } = self.jobs[i].kind.clone() else {
            return;
        };
        let (round, since) = self
            .rounds
            .get(&i)
            .copied()
            .unwrap_or((1, std::time::Instant::now()));
        if outcome.stop_reason != super::group::NOT_DONE {
            self.finish(i, outcome);
            return;
        }
        let Some(stop) = stop else {
            self.finish(i, outcome);
            return;
        };
        let reason = if self.stop_reason.is_some() {
            Some("interrupted")
        } else if round >= stop.max_iterations {
            Some("max_iterations")
        } else if stop.deadline.is_some_and(|d| since.elapsed() >= d) {
            Some("deadline")
        } else {
            None
        };
        if let Some(reason) = reason {
            let mut out = outcome;
            out.stop_reason = reason.to_string();
            self.finish(i, out);
            return;
        }
        let previous = context! {
            output => outcome.output.as_str(),
            status => "failed",
            stop_reason => outcome.stop_reason.as_str(),
            iteration => round,
        };
        self.group_previous.insert(group, previous);
        self.rounds.insert(i, (round + 1, since));
        self.emit(Event::GroupRestarted {
            key: Arc::clone(&self.jobs[i].key),
            round: round + 1,
            max_rounds: stop.max_iterations,
            why: outcome
                .error
                .clone()
                .unwrap_or_else(|| outcome.stop_reason.clone()),
        });
        self.restart(i, round + 1);
    }

    /// Puts a group job's inner instances back to waiting, for round `round`.
    fn restart(&mut self, i: usize, round: u32) {
        let inner: Vec<usize> = self.jobs[i].needs.clone();
        for &j in &inner {
            if let Some(children) = self.expanded.remove(&j) {
                for c in children {
                    self.parent.remove(&c);
                    self.retired.insert(c);
                }
            }
            // An inner looping sub-workflow starts its own rounds afresh.
            self.rounds.remove(&j);
        }
        for &j in &inner {
            self.state[j] = State::Waiting;
            self.waiting[j] = self.jobs[j]
                .needs
                .iter()
                .filter(|n| inner.contains(n))
                .count();
            self.job_round.insert(j, round);
            if self.waiting[j] == 0 {
                self.ready.insert(j);
            }
        }
        // Jobs outside that wait on inner ones (and on this group job) will
        // be released by the inner jobs again: count them back in.
        for &j in &inner {
            for d in self.dependents[j].clone() {
                if d != i && !inner.contains(&d) {
                    self.waiting[d] += 1;
                }
            }
        }
        self.state[i] = State::Waiting;
        self.waiting[i] = inner.len();
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
            return Some(super::fingerprint::combined(
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

    /// Whether `i` runs for the first time in this apply (not a later round
    /// of a looping sub-workflow): only then may it be up to date or resume.
    fn first_round(&self, i: usize) -> bool {
        self.job_round.get(&i).is_none_or(|&r| r <= 1)
            && self.rounds.get(&i).is_none_or(|r| r.0 <= 1)
    }

    /// `previous` for a job inside looping sub-workflows: the innermost one's last round.
    fn group_previous_of(&self, i: usize) -> Value {
        self.shared.program.nodes[self.jobs[i].node]
            .groups
            .iter()
            .find_map(|g| self.group_previous.get(g).cloned())
            .unwrap_or(Value::UNDEFINED)
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
            self.stopping("fail_fast");
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
                    Outcome::ended(Status::Failed, "instance_failed")
                } else {
                    Outcome::ended(Status::Done, "done")
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
                self.finish(
                    d,
                    Outcome::skipped(format!("needs `{key}`, which did not finish")),
                );
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
            Ok(v) if v.is_true() => Outcome::ended(Status::Done, "gate_true"),
            Ok(_) => Outcome::ended(Status::Failed, "gate_false"),
            Err(e) => {
                let mut o = Outcome::ended(Status::Failed, "gate_error");
                o.error = Some(format!("{e:#}"));
                o
            }
        }
    }

    /// Turns a run-time fan-out into one job per item of its source's answer.
    fn expand(&mut self, p: usize) {
        let JobKind::FanOut {
            from,
            path,
            lines,
            max_items,
            mirror,
            agent,
        } = self.jobs[p].kind.clone()
        else {
            return;
        };
        let sources = self.instances_of(from);
        let mut items: Vec<(serde_json::Value, Option<usize>)> = Vec::new();
        for &s in &sources {
            let State::Finished(o) = &self.state[s] else {
                continue;
            };
            if mirror {
                if let Some(item) = &self.jobs[s].item {
                    items.push((item.clone(), Some(s)));
                }
                continue;
            }
            if o.status != Status::Done {
                continue;
            }
            if lines {
                items.extend(
                    o.output
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| (serde_json::Value::from(l), None)),
                );
            } else if let Some(path) = &path {
                let root = serde_json::json!({
                    "json": o.json.clone().unwrap_or(serde_json::Value::Null),
                    "output": o.output,
                });
                match at_path(&root, path) {
                    Some(serde_json::Value::Array(a)) => {
                        items.extend(a.iter().cloned().map(|v| (v, None)));
                    }
                    other => {
                        let mut out = Outcome::ended(Status::Failed, "fan_out_source");
                        out.error = Some(format!(
                            "`{path}` of `{}` is {}, not a list",
                            self.jobs[s].key,
                            other.map_or("missing".to_string(), ToString::to_string)
                        ));
                        self.finish(p, out);
                        return;
                    }
                }
            }
        }
        if items.len() > max_items as usize {
            let mut out = Outcome::ended(Status::Failed, "max_items");
            out.error = Some(format!(
                "{} items, more than max_items = {max_items}",
                items.len()
            ));
            self.finish(p, out);
            return;
        }
        let base = Arc::clone(&self.jobs[p]);
        let node_id = self.shared.program.nodes[base.node].id.clone();
        self.emit_expanded(p, &items, &node_id);
        if items.is_empty() {
            self.finish(p, Outcome::ended(Status::Done, "no_items"));
            return;
        }
        let mut children = Vec::new();
        for (item, source) in items {
            let idx = self.jobs.len();
            let mut needs = base.needs.clone();
            if let Some(s) = source {
                needs.push(s);
            }
            let key: Arc<str> =
                crate::plan::expand::instance_key(&node_id, Some(&item), None).into();
            self.by_key.insert(Arc::clone(&key), idx);
            let mirrored =
                source.map(|s| (&*self.jobs[s].key, self.jobs[s].fingerprint.hash.as_str()));
            let fingerprint = Arc::new(base.fingerprint.child(&item, mirrored));
            let forced = base.forced || self.prior.forces(&key);
            self.jobs.push(Arc::new(Job {
                key,
                needs,
                item: Some(item),
                kind: JobKind::Agent(Arc::clone(&agent)),
                fingerprint,
                forced,
                ..(*base).clone()
            }));
            self.state.push(State::Waiting);
            self.waiting.push(0);
            self.dependents.push(Vec::new());
            self.parent.insert(idx, p);
            self.ready.insert(idx);
            children.push(idx);
        }
        self.unfinished.insert(p, children.len());
        self.child_failed.remove(&p);
        self.expanded.insert(p, children.clone());
        self.state[p] = State::Expanded;
    }

    fn emit_expanded(
        &mut self,
        p: usize,
        items: &[(serde_json::Value, Option<usize>)],
        node_id: &str,
    ) {
        let instances = items
            .iter()
            .map(|(item, _)| crate::plan::expand::instance_key(node_id, Some(item), None).into())
            .collect();
        self.emit(Event::Expanded {
            key: Arc::clone(&self.jobs[p].key),
            instances,
        });
    }

    /// The instances of `node`: an expanded fan-out counts as the jobs it became.
    fn instances_of(&self, node: usize) -> Vec<usize> {
        self.by_node[node]
            .iter()
            .flat_map(|&s| self.expanded.get(&s).cloned().unwrap_or_else(|| vec![s]))
            .collect()
    }

    /// `needs` as job `i`'s templates see it.
    fn needs_value(&self, i: usize) -> Value {
        let job = &self.jobs[i];
        let node = &self.shared.program.nodes[job.node];
        let mut map = std::collections::BTreeMap::new();
        for (name, j) in &node.needs_by_name {
            let instances = self.instances_of(*j);
            let value_of = |s: usize| match &self.state[s] {
                State::Finished(o) => o.to_value(self.jobs[s].item.as_ref()),
                _ => Value::UNDEFINED,
            };
            let source = &self.shared.program.nodes[*j];
            let mirrored = Some(*j) == node.fan_out_source
                && matches!(node.for_each, Some(ForEach::EachOf { .. }));
            let value = if mirrored {
                instances
                    .iter()
                    .find(|&&s| self.jobs[s].item == job.item)
                    .map_or(Value::UNDEFINED, |&s| value_of(s))
            } else if source.for_each.is_some() || !source.matrix.is_empty() {
                Value::from(instances.iter().map(|&s| value_of(s)).collect::<Vec<_>>())
            } else {
                instances.first().map_or(Value::UNDEFINED, |&s| value_of(s))
            };
            map.insert(name.clone(), value);
        }
        Value::from(map)
    }

    fn emit(&mut self, event: Event) {
        self.record(&event);
        self.observer.event(&event);
        drop(event);
    }

    /// The project-bus record of an event.
    fn record(&mut self, event: &Event) {
        let apply = ("apply_id", self.shared.apply_id.clone());
        let workflow = ("workflow", self.shared.workflow.clone());
        let (kind, task_id, meta, body): (&str, String, Vec<(&str, String)>, String) = match event {
            Event::WorkflowStarted { instances, .. } => (
                "WORKFLOW_START",
                String::new(),
                {
                    let mut meta = vec![
                        apply,
                        workflow,
                        ("instances", instances.to_string()),
                        ("pid", std::process::id().to_string()),
                        ("apply_start", self.shared.apply_start.to_string()),
                    ];
                    if self.shared.continued {
                        meta.push(("resumed", "true".into()));
                    }
                    meta
                },
                format!(
                    "workflow {} started ({instances} instances)",
                    self.shared.workflow
                ),
            ),
            Event::InstanceStarted { key, task_id } => {
                let i = self.index_of(key);
                (
                    "NODE_START",
                    task_id.clone(),
                    self.node_meta(i, vec![apply, workflow]),
                    format!("{key} started"),
                )
            }
            Event::InstanceFinished { key, outcome } => {
                let i = self.index_of(key);
                let completed = outcome.fingerprint.as_ref().map(|f| f.hash.clone());
                let kind = match outcome.status {
                    Status::Done => "NODE_DONE",
                    Status::Failed => "NODE_FAILED",
                    Status::Skipped => "NODE_SKIPPED",
                };
                let mut meta = self.node_meta(i, vec![apply, workflow]);
                if let Some(hash) = completed {
                    meta.retain(|(k, _)| *k != "fingerprint");
                    meta.push(("fingerprint", hash));
                }
                meta.push(("status", outcome.status.as_str().into()));
                meta.push(("stop_reason", outcome.stop_reason.clone()));
                if let Some(run) = &outcome.run_id {
                    meta.push(("run_id", run.clone()));
                }
                meta.push(("iterations", outcome.iterations.to_string()));
                meta.push(("duration_ms", outcome.duration.as_millis().to_string()));
                if let Some(c) = outcome.exit_code {
                    meta.push(("exit_code", c.to_string()));
                }
                if outcome.usage.tokens() > 0 || outcome.usage.cost_usd > 0.0 {
                    meta.push(("input_tokens", outcome.usage.input_tokens.to_string()));
                    meta.push(("output_tokens", outcome.usage.output_tokens.to_string()));
                    meta.push(("cost_usd", format!("{:.6}", outcome.usage.cost_usd)));
                }
                let mut body =
                    format!("{key} {}: {}", outcome.status.as_str(), outcome.stop_reason);
                if let Some(e) = &outcome.error {
                    body.push('\n');
                    body.push_str(e);
                }
                (
                    kind,
                    outcome.task_id.clone().unwrap_or_default(),
                    meta,
                    body,
                )
            }
            Event::Stopping { reason } => (
                "INFO",
                String::new(),
                vec![apply, workflow, ("stop_reason", reason.clone())],
                format!("stopping: {reason}"),
            ),
            _ => return,
        };
        self.post(kind, &task_id, meta, &body);
    }

    pub(super) fn post(
        &mut self,
        kind: &str,
        task_id: &str,
        meta: Vec<(&str, String)>,
        body: &str,
    ) {
        let Some(bus) = self.bus.as_mut() else { return };
        let msg = NewMessage {
            kind: kind.to_string(),
            project_id: self.shared.project.clone(),
            task_id: task_id.to_string(),
            run_id: String::new(),
            parents: Vec::new(),
            meta: meta
                .into_iter()
                .map(|(k, v)| (k.to_string(), self.shared.redactor.redact(&v).into_owned()))
                .collect(),
            body: self.shared.redactor.redact(body).into_owned(),
        };
        if let Err(e) = bus.append(&msg) {
            tracing::warn!("cannot post {kind}: {e}");
        }
    }

    fn index_of(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    fn node_meta<'k>(
        &self,
        i: Option<usize>,
        mut meta: Vec<(&'k str, String)>,
    ) -> Vec<(&'k str, String)> {
        if let Some(i) = i {
            let job = &self.jobs[i];
            meta.push(("node", self.shared.program.nodes[job.node].id.clone()));
            meta.push(("instance", job.key.to_string()));
            meta.push(("fingerprint", job.fingerprint.hash.clone()));
            if let Some(item) = &job.item {
                meta.push(("item", item_text(Some(item))));
            }
        }
        meta
    }

    /// Every instance that ran or was skipped, in plan order; an expanded
    /// fan-out is shown as its instances.
    fn summaries(&self) -> Vec<InstanceSummary> {
        let mut out = Vec::new();
        for i in 0..self.jobs.len() {
            if self.parent.contains_key(&i) || self.retired.contains(&i) {
                continue;
            }
            let list = self.expanded.get(&i).cloned().unwrap_or_else(|| vec![i]);
            for j in list {
                let State::Finished(o) = &self.state[j] else {
                    continue;
                };
                let job = &self.jobs[j];
                out.push(InstanceSummary::new(
                    &job.key,
                    &self.shared.program.nodes[job.node].id,
                    job.item.as_ref(),
                    o,
                    job.on_failure != OnFailure::Ignore,
                ));
            }
        }
        out
    }
}
