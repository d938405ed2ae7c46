//! A watch's re-plan of a running apply: which instances are kept (ended
//! ones with their outcome, running ones running), which running ones are
//! stopped to run again under the new plan, and the new state.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Before, Control, Dispatcher, Slot, State};
use crate::runner::event::Event;
use crate::runner::job::{Job, JobKind};

impl Dispatcher<'_> {
    pub(super) fn control(&mut self, control: Control) {
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
                    && job.completed(&self.prior).is_none()
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
    pub(super) fn replan(
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
        for i in crate::runner::job::topological(&jobs) {
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
}
