//! Owns the jobs of a running apply as a graph: each job's state, what
//! waits on what, which jobs are ready, and the lookups by program node and
//! by instance key. Run-time fan-out adds jobs to it as it goes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::compile::NodeId;
use crate::model::OnFailure;
use crate::runner::job::{Job, JobId, JobKind, PerJob};
use crate::runner::outcome::{Outcome, Status};

/// Where a job stands.
#[derive(Debug, Clone)]
pub(super) enum State {
    Waiting,
    Running,
    /// A run-time fan-out that became jobs (`FanOuts::children`).
    Expanded,
    Finished(Arc<Outcome>),
}

/// The jobs and their states.
#[derive(Debug, Default)]
pub(super) struct JobGraph {
    pub(super) jobs: PerJob<Arc<Job>>,
    pub(super) state: PerJob<State>,
    pub(super) dependents: PerJob<Vec<JobId>>,
    /// How many of each job's needs are not terminal yet.
    pub(super) waiting: PerJob<usize>,
    /// For each program node, its planned jobs in item order.
    by_node: HashMap<NodeId, Vec<JobId>>,
    /// The latest job with each instance key.
    by_key: HashMap<Arc<str>, JobId>,
    /// Jobs whose needs are all terminal, not started yet.
    pub(super) ready: BTreeSet<JobId>,
}

impl JobGraph {
    /// `jobs`, all waiting.
    pub(super) fn new(jobs: PerJob<Job>) -> Self {
        let mut g = Self::default();
        for job in jobs.into_values() {
            let i = g.push(job);
            g.by_node.entry(g.jobs[i].node).or_default().push(i);
        }
        for (i, job) in g.jobs.iter() {
            for &need in &job.needs {
                g.dependents[need].push(i);
            }
        }
        g.ready = g
            .waiting
            .iter()
            .filter(|(_, w)| **w == 0)
            .map(|(i, _)| i)
            .collect();
        g
    }

    /// Adds a job waiting on its needs; it is not ready until the caller
    /// says so. A run-time fan-out's instance is added this way, and is
    /// found through its fan-out rather than among its node's jobs.
    pub(super) fn push(&mut self, job: Job) -> JobId {
        let i = self.jobs.push(Arc::new(job));
        let job = &self.jobs[i];
        self.by_key.insert(Arc::clone(&job.key), i);
        self.state.push(State::Waiting);
        self.waiting.push(job.needs.len());
        self.dependents.push(Vec::new());
        i
    }

    pub(super) fn len(&self) -> usize {
        self.jobs.len()
    }

    /// The jobs of a program node, in item order (a run-time fan-out's
    /// placeholder, not the instances it became).
    pub(super) fn of_node(&self, node: NodeId) -> &[JobId] {
        self.by_node.get(&node).map_or(&[], Vec::as_slice)
    }

    /// The latest job with this instance key.
    pub(super) fn by_key(&self, key: &str) -> Option<JobId> {
        self.by_key.get(key).copied()
    }

    pub(super) fn outcome(&self, i: JobId) -> Option<&Arc<Outcome>> {
        match &self.state[i] {
            State::Finished(o) => Some(o),
            _ => None,
        }
    }

    /// The need of `d` that keeps it from running: one that was skipped, or
    /// that failed with `on_failure = "fail"`. A gate runs whatever its
    /// needs did; a merge node, whatever the instances it merges did (it
    /// merges those that are done).
    pub(super) fn blocked_by(&self, d: JobId) -> Option<Arc<str>> {
        let merged_from = match &self.jobs[d].kind {
            JobKind::Gate(_) => return None,
            JobKind::Merge(m) => m.from.as_slice(),
            _ => &[],
        };
        self.jobs[d].needs.iter().find_map(|&n| {
            if merged_from.contains(&self.jobs[n].node) {
                return None;
            }
            let o = self.outcome(n)?;
            let blocks = o.status == Status::Skipped
                || (o.status == Status::Failed && self.jobs[n].on_failure == OnFailure::Fail);
            blocks.then(|| Arc::clone(&self.jobs[n].key))
        })
    }

    /// `d`'s needs went down by one; whether they are all terminal now.
    pub(super) fn need_ended(&mut self, d: JobId) -> bool {
        self.waiting[d] = self.waiting[d].saturating_sub(1);
        self.waiting[d] == 0
    }
}
