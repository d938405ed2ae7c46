//! Looping sub-workflows: the verdict after each round, and putting the
//! inner instances back for the next round with `previous` set.

use std::sync::Arc;

use minijinja::{Value, context};

use super::{Dispatcher, State};
use crate::runner::event::Event;
use crate::runner::job::JobKind;
use crate::runner::outcome::Outcome;
use crate::stop_reason::StopReason;

impl Dispatcher<'_> {
    /// A group job's round ended: finish it, or run its inner instances again.
    pub(super) fn group_ended(&mut self, i: usize, outcome: Outcome) {
        let JobKind::Group { group, stop, .. } = self.jobs[i].kind.clone() else {
            return;
        };
        let (round, since) = self
            .rounds
            .get(&i)
            .copied()
            .unwrap_or((1, std::time::Instant::now()));
        if outcome.stop_reason != StopReason::NotDone {
            self.finish(i, outcome);
            return;
        }
        let Some(stop) = stop else {
            self.finish(i, outcome);
            return;
        };
        let reason = if self.stop_reason.is_some() {
            Some(StopReason::Interrupted)
        } else if round >= stop.max_iterations {
            Some(StopReason::MaxIterations)
        } else if stop.deadline.is_some_and(|d| since.elapsed() >= d) {
            Some(StopReason::Deadline)
        } else {
            None
        };
        if let Some(reason) = reason {
            let mut out = outcome;
            out.stop_reason = reason;
            self.finish(i, out);
            return;
        }
        let previous = context! {
            output => outcome.output.as_str(),
            status => "failed",
            stop_reason => outcome.stop_reason.to_string(),
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
                .unwrap_or_else(|| outcome.stop_reason.to_string()),
        });
        self.restart(i, round + 1);
    }

    /// Puts a group job's inner instances back to waiting, for round `round`.
    pub(super) fn restart(&mut self, i: usize, round: u32) {
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

    /// `previous` for a job inside looping sub-workflows: the innermost one's last round.
    pub(super) fn group_previous_of(&self, i: usize) -> Value {
        self.shared.program.nodes[self.jobs[i].node]
            .groups
            .iter()
            .find_map(|g| self.group_previous.get(g).cloned())
            .unwrap_or(Value::UNDEFINED)
    }
}
