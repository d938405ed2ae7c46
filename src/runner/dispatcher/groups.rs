//! Looping sub-workflows: the verdict after each round, and putting the
//! inner instances back for the next round with `previous` set.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use minijinja::{Value, context};

use super::fan_out::FanOuts;
use super::graph::{JobGraph, State};
use crate::compile::GroupId;
use crate::runner::event::Event;
use crate::runner::job::{JobId, JobKind};
use crate::runner::outcome::Outcome;
use crate::stop_reason::StopReason;

/// The rounds of looping sub-workflows.
#[derive(Debug, Default)]
pub(super) struct Rounds {
    /// Each group job's current round and when its first round started.
    current: HashMap<JobId, (u32, Instant)>,
    /// The round each inner job is in (1 when absent).
    of_job: HashMap<JobId, u32>,
    /// By sub-workflow: its previous round's result, as `previous`.
    previous: HashMap<GroupId, Value>,
    /// Instances of an earlier round of a fan-out inside a looping
    /// sub-workflow: replaced by the round that followed.
    retired: HashSet<JobId>,
}

impl Rounds {
    /// The round group job `i` is in, starting its first if it has none.
    pub(super) fn start(&mut self, i: JobId) -> u32 {
        self.current.entry(i).or_insert((1, Instant::now())).0
    }

    /// The round of the looping sub-workflows inner job `i` is in.
    pub(super) fn of(&self, i: JobId) -> u32 {
        self.of_job.get(&i).copied().unwrap_or(1)
    }

    /// Whether `i` runs for the first time in this apply (not a later round
    /// of a looping sub-workflow): only then may it be up to date or resume.
    pub(super) fn first(&self, i: JobId) -> bool {
        self.of_job.get(&i).is_none_or(|&r| r <= 1) && self.current.get(&i).is_none_or(|r| r.0 <= 1)
    }

    pub(super) fn is_retired(&self, i: JobId) -> bool {
        self.retired.contains(&i)
    }

    /// `previous` for an instance inside these sub-workflows (innermost
    /// first): the innermost one's last round.
    pub(super) fn previous_of(&self, groups: &[GroupId]) -> Value {
        groups
            .iter()
            .find_map(|g| self.previous.get(g).cloned())
            .unwrap_or(Value::UNDEFINED)
    }
}

/// What the end of a sub-workflow's round comes to.
#[derive(Debug)]
pub(super) enum RoundEnd {
    /// The sub-workflow is done or failed, with this.
    Finish(Outcome),
    /// Its inner instances wait to run again (told by this event).
    Again(Event),
}

/// Group job `i`'s round ended with `outcome`: it finishes, or its inner
/// instances are put back for the next round. `stopping`: the apply is
/// being stopped, so no round follows.
pub(super) fn round_ended(
    i: JobId,
    outcome: Outcome,
    stopping: bool,
    graph: &mut JobGraph,
    fan_outs: &mut FanOuts,
    rounds: &mut Rounds,
) -> RoundEnd {
    let JobKind::Group { group, stop, .. } = graph.jobs[i].kind.clone() else {
        return RoundEnd::Finish(outcome);
    };
    let (round, since) = rounds
        .current
        .get(&i)
        .copied()
        .unwrap_or((1, Instant::now()));
    if outcome.stop_reason != StopReason::NotDone {
        return RoundEnd::Finish(outcome);
    }
    let Some(stop) = stop else {
        return RoundEnd::Finish(outcome);
    };
    let reason = if stopping {
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
        return RoundEnd::Finish(out);
    }
    let previous = context! {
        output => outcome.output.as_str(),
        status => "failed",
        stop_reason => outcome.stop_reason.to_string(),
        iteration => round,
    };
    rounds.previous.insert(group, previous);
    rounds.current.insert(i, (round + 1, since));
    restart(i, round + 1, graph, fan_outs, rounds);
    RoundEnd::Again(Event::GroupRestarted {
        key: Arc::clone(&graph.jobs[i].key),
        round: round + 1,
        max_rounds: stop.max_iterations,
        why: outcome
            .error
            .clone()
            .unwrap_or_else(|| outcome.stop_reason.to_string()),
    })
}

/// Puts a group job's inner instances back to waiting, for round `round`.
fn restart(
    i: JobId,
    round: u32,
    graph: &mut JobGraph,
    fan_outs: &mut FanOuts,
    rounds: &mut Rounds,
) {
    let inner: Vec<JobId> = graph.jobs[i].needs.clone();
    for &j in &inner {
        let retired = fan_outs.forget(j);
        rounds.retired.extend(retired);
        // An inner looping sub-workflow starts its own rounds afresh.
        rounds.current.remove(&j);
    }
    for &j in &inner {
        graph.state[j] = State::Waiting;
        graph.waiting[j] = graph.jobs[j]
            .needs
            .iter()
            .filter(|n| inner.contains(n))
            .count();
        rounds.of_job.insert(j, round);
        if graph.waiting[j] == 0 {
            graph.ready.insert(j);
        }
    }
    // Jobs outside that wait on inner ones (and on this group job) will be
    // released by the inner jobs again: count them back in.
    for &j in &inner {
        for d in graph.dependents[j].clone() {
            if d != i && !inner.contains(&d) {
                graph.waiting[d] += 1;
            }
        }
    }
    graph.state[i] = State::Waiting;
    graph.waiting[i] = inner.len();
}
