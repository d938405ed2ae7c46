//! A watch's re-plan of a running apply: which instances are kept (ended
//! ones with their outcome, running ones running), which running ones are
//! stopped to run again under the new plan, and the new state.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::graph::{JobGraph, State};
use super::groups::Rounds;
use super::units::{LaunchId, Owner, Units};
use crate::incremental::fingerprint::Fingerprint;
use crate::runner::job::{Job, JobId, PerJob};
use crate::runner::outcome::Outcome;

/// An instance before a re-plan: the fingerprint it ended (or runs) with,
/// and its outcome when it ended.
struct Before {
    fingerprint: Arc<Fingerprint>,
    outcome: Option<Arc<Outcome>>,
}

/// What a re-plan keeps from the plan before it, by instance key.
#[derive(Debug, Default)]
pub(super) struct Replans {
    /// Instances that ended, with their outcome, and whether that end is
    /// still to be announced (it ended after the re-plan).
    carried: HashMap<Arc<str>, (Arc<Outcome>, bool)>,
    /// Units still running from before the re-plan.
    adopted: HashMap<Arc<str>, LaunchId>,
    /// Keys whose invalidated unit is still stopping; a new run of the
    /// same key waits for it (they would share a task folder).
    draining: HashSet<Arc<str>>,
    /// Such a new run, waiting.
    deferred: HashMap<Arc<str>, JobId>,
}

impl Replans {
    /// What job `key` takes over from before the re-plan, if anything.
    pub(super) fn take(&mut self, key: &str) -> Option<Taken> {
        if let Some((outcome, loud)) = self.carried.remove(key) {
            return Some(Taken::Ended(outcome, loud));
        }
        if let Some(id) = self.adopted.remove(key) {
            return Some(Taken::Running(id));
        }
        self.draining.contains(key).then_some(Taken::Draining)
    }

    /// Job `i` waits for the invalidated unit of its key to stop.
    pub(super) fn defer(&mut self, key: Arc<str>, i: JobId) {
        self.deferred.insert(key, i);
    }

    /// An invalidated unit stopped: the job waiting for it, if any.
    pub(super) fn drained(&mut self, key: &str) -> Option<JobId> {
        self.draining.remove(key);
        self.deferred.remove(key)
    }

    /// Whether `key`'s instance is kept from before the last re-plan.
    pub(super) fn keeps(&self, key: &str) -> bool {
        self.carried.contains_key(key) || self.adopted.contains_key(key)
    }

    /// A kept unit ended before its new job was reached: its outcome waits
    /// there, to be announced.
    pub(super) fn ended_early(&mut self, key: Arc<str>, outcome: Outcome) {
        self.adopted.remove(&key);
        self.carried.insert(key, (Arc::new(outcome), true));
    }
}

/// What a job takes over from before a re-plan.
pub(super) enum Taken {
    /// Its instance ended; `true` when that is still to be announced.
    Ended(Arc<Outcome>, bool),
    /// Its instance is still running under this launch.
    Running(LaunchId),
    /// Its instance's old unit is still stopping.
    Draining,
}

/// Takes a watch's new plan in: instances whose definition, inputs and
/// upstream are unchanged are kept (ended ones with their outcome, running
/// ones go on running); running ones that changed are cancelled and run
/// again under the new plan. Returns the keys cancelled. The caller puts
/// the new jobs in place.
pub(super) fn replan(
    replans: &mut Replans,
    units: &mut Units,
    graph: &JobGraph,
    rounds: &Rounds,
    jobs: &PerJob<Job>,
) -> Vec<Arc<str>> {
    let old = before(replans, units, graph, rounds);
    // Kept: the same definition, and everything it needs kept.
    let running: HashSet<Arc<str>> = units
        .launches()
        .filter(|l| l.owner != Owner::Invalidated)
        .map(|l| Arc::clone(&l.key))
        .collect();
    let mut keep = PerJob::filled(jobs.len(), false);
    for i in crate::runner::job::topological(jobs) {
        let job = &jobs[i];
        let Some(was) = old.get(&job.key) else {
            continue;
        };
        let now = &job.fingerprint;
        keep[i] = job.needs.iter().all(|&n| keep[n])
            && was.fingerprint.parts == now.parts
            && was.fingerprint.templates == now.templates
            && (running.contains(&job.key) || was.fingerprint.inputs == now.inputs);
    }
    let kept: HashSet<Arc<str>> = jobs
        .iter()
        .filter(|(i, _)| keep[*i])
        .map(|(_, j)| Arc::clone(&j.key))
        .collect();
    // Run-time instances are kept with their fan-out.
    let kept_child = |key: &str| {
        key.split_once('[')
            .is_some_and(|(node, _)| kept.iter().any(|k| k.strip_suffix("[*]") == Some(node)))
    };
    let is_kept = |key: &str| kept.contains(key) || kept_child(key);
    replans.carried = old
        .into_iter()
        .filter_map(|(key, before)| {
            let o = before.outcome?;
            is_kept(&key).then_some((key, (o, false)))
        })
        .collect();
    replans.adopted.clear();
    replans.deferred.clear();
    let mut restarted = Vec::new();
    for (id, l) in units.launches_mut() {
        if l.owner == Owner::Invalidated {
            continue;
        }
        if is_kept(&l.key) {
            replans.adopted.insert(Arc::clone(&l.key), id);
            l.owner = Owner::Adopted;
        } else {
            l.cancel.cancel();
            l.owner = Owner::Invalidated;
            replans.draining.insert(Arc::clone(&l.key));
            restarted.push(Arc::clone(&l.key));
        }
    }
    restarted.sort();
    restarted
}

/// What the state before a re-plan ended (or runs) with, by key.
fn before(
    replans: &Replans,
    units: &Units,
    graph: &JobGraph,
    rounds: &Rounds,
) -> HashMap<Arc<str>, Before> {
    let mut old: HashMap<Arc<str>, Before> = HashMap::new();
    for (key, (outcome, _)) in &replans.carried {
        if let Some(fp) = &outcome.fingerprint {
            old.insert(
                Arc::clone(key),
                Before {
                    fingerprint: Arc::clone(fp),
                    outcome: Some(Arc::clone(outcome)),
                },
            );
        }
    }
    for (i, job) in graph.jobs.iter() {
        if rounds.is_retired(i) {
            continue;
        }
        match &graph.state[i] {
            State::Finished(o) => {
                let fp = o
                    .fingerprint
                    .clone()
                    .unwrap_or_else(|| Arc::clone(&job.fingerprint));
                let mut o = (**o).clone();
                o.fingerprint = Some(Arc::clone(&fp));
                old.insert(
                    Arc::clone(&job.key),
                    Before {
                        fingerprint: fp,
                        outcome: Some(Arc::new(o)),
                    },
                );
            }
            State::Expanded => {
                old.insert(
                    Arc::clone(&job.key),
                    Before {
                        fingerprint: Arc::clone(&job.fingerprint),
                        outcome: None,
                    },
                );
            }
            State::Running | State::Waiting => {}
        }
    }
    for l in units.launches().filter(|l| l.owner != Owner::Invalidated) {
        old.insert(
            Arc::clone(&l.key),
            Before {
                fingerprint: Arc::clone(&l.fingerprint),
                outcome: None,
            },
        );
    }
    old
}
