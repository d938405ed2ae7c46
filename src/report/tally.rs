//! Owns the console's header: how many instances are done, running,
//! queued (ready, waiting for a slot), waiting (for their needs), failed
//! and skipped, the time since the apply started, and the tokens and money
//! spent against the budget (docs/console.md, "The header"). It is counted
//! from the apply's events alone, as every view of a run is.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::agents::usage::Usage;
use crate::runner::event::Event;
use crate::runner::outcome::Status;
use crate::stop_reason::StopReason;

/// The counts of one apply, as its events tell them.
#[derive(Debug)]
pub(super) struct Tally {
    started_at: Instant,
    /// The plan's instances, each run-time fan-out counted once.
    planned: usize,
    /// Each run-time fan-out's items, once known (a looping sub-workflow
    /// expands its fan-outs again: the latest counts).
    expanded: HashMap<Arc<str>, usize>,
    running: HashSet<Arc<str>>,
    /// How each instance that ended ended, the latest time (a looping
    /// sub-workflow runs its instances again).
    ended: HashMap<Arc<str>, Ended>,
    /// How many of `ended` ended each way (kept as it changes: the header
    /// is drawn often, the instances may be 100,000).
    counts: [usize; 4],
    queued: usize,
    usage: Usage,
    budget_usd: Option<f64>,
    /// What each instance has cost so far.
    cost: HashMap<Arc<str>, f64>,
}

/// How an instance ended, for the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Done,
    UpToDate,
    Failed,
    Skipped,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            started_at: Instant::now(),
            planned: 0,
            expanded: HashMap::new(),
            running: HashSet::new(),
            ended: HashMap::new(),
            counts: [0; 4],
            queued: 0,
            usage: Usage::default(),
            budget_usd: None,
            cost: HashMap::new(),
        }
    }
}

impl Tally {
    /// Counts `event` in.
    pub(super) fn event(&mut self, event: &Event) {
        match event {
            Event::WorkflowStarted {
                instances,
                budget_usd,
                ..
            } => {
                *self = Self {
                    planned: *instances,
                    budget_usd: *budget_usd,
                    ..Self::default()
                };
            }
            Event::InstanceStarted { key, .. } => {
                if let Some(was) = self.ended.remove(key) {
                    self.counts[was as usize] -= 1;
                }
                self.running.insert(Arc::clone(key));
            }
            Event::Expanded { key, instances } if !instances.is_empty() => {
                self.expanded.insert(Arc::clone(key), instances.len());
            }
            Event::IterationFinished { key, usage, .. } => {
                self.usage.add(*usage);
                *self.cost.entry(Arc::clone(key)).or_default() += usage.cost_usd;
            }
            Event::InstanceFinished { key, outcome } => {
                self.running.remove(key);
                let ended = match outcome.status {
                    Status::Done if outcome.stop_reason == StopReason::UpToDate => Ended::UpToDate,
                    Status::Done => Ended::Done,
                    Status::Failed => Ended::Failed,
                    Status::Skipped => Ended::Skipped,
                };
                if let Some(was) = self.ended.insert(Arc::clone(key), ended) {
                    self.counts[was as usize] -= 1;
                }
                self.counts[ended as usize] += 1;
            }
            Event::Queued { queued } => self.queued = *queued,
            _ => {}
        }
    }

    /// What `key` has cost so far, when it cost anything.
    pub(super) fn cost_of(&self, key: &str) -> Option<f64> {
        self.cost.get(key).copied().filter(|c| *c > 0.0)
    }

    /// `done 3/10 · running 2 · queued 1 · waiting 4 · $0.42 of $5.00 ·
    /// 12.3k tokens · 1m12s`.
    pub(super) fn header(&self) -> String {
        // A fan-out counted once in the plan becomes its items.
        let total = self.planned + self.expanded.values().map(|n| n - 1).sum::<usize>();
        let count = |what: Ended| self.counts[what as usize];
        let (done, up_to_date) = (count(Ended::Done), count(Ended::UpToDate));
        let (failed, skipped) = (count(Ended::Failed), count(Ended::Skipped));
        let waiting = total.saturating_sub(self.ended.len() + self.running.len() + self.queued);
        let done = if up_to_date > 0 {
            format!("done {} ({up_to_date} up to date)", done + up_to_date)
        } else {
            format!("done {done}")
        };
        // Most wanted first: a narrow terminal cuts the end. Counts of
        // nothing are left out.
        let mut parts = vec![format!("{done}/{total}")];
        for (n, what) in [
            (self.running.len(), "running"),
            (self.queued, "queued"),
            (waiting, "waiting"),
            (failed, "failed"),
            (skipped, "skipped"),
        ] {
            if n > 0 {
                parts.push(format!("{what} {n}"));
            }
        }
        if self.usage.cost_usd > 0.0 || self.budget_usd.is_some() {
            let spent = super::human::money(self.usage.cost_usd);
            parts.push(match self.budget_usd {
                Some(budget) => format!("{spent} of {}", super::human::money(budget)),
                None => spent,
            });
        }
        if self.usage.tokens() > 0 {
            parts.push(format!(
                "{} tokens",
                super::human::count(self.usage.tokens())
            ));
        }
        parts.push(super::human::format_ms(
            u64::try_from(self.started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
        ));
        parts.join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::outcome::Outcome;

    fn key(k: &str) -> Arc<str> {
        Arc::from(k)
    }

    #[test]
    fn the_header_counts_each_state_and_the_money_against_the_budget() {
        let mut t = Tally::default();
        t.event(&Event::WorkflowStarted {
            apply_id: "a".into(),
            workflow: "w".into(),
            instances: 4,
            fan_outs: 1,
            project_dir: "/p".into(),
            budget_usd: Some(5.0),
        });
        // A run-time fan-out counted once becomes three.
        t.event(&Event::Expanded {
            key: key("work[*]"),
            instances: vec![key("work[a]"), key("work[b]"), key("work[c]")],
        });
        t.event(&Event::InstanceStarted {
            key: key("work[a]"),
            task_id: "t".into(),
        });
        t.event(&Event::InstanceStarted {
            key: key("work[b]"),
            task_id: "t".into(),
        });
        t.event(&Event::Queued { queued: 1 });
        t.event(&Event::IterationFinished {
            key: key("work[a]"),
            iteration: 1,
            exit_code: 0,
            verdict: crate::runner::verdict::Verdict::Done(StopReason::Met(
                crate::stop_reason::Condition::DoneFile,
            )),
            duration: std::time::Duration::from_secs(1),
            usage: Usage {
                input_tokens: 12_000,
                output_tokens: 345,
                cost_usd: 0.42,
            },
        });
        t.event(&Event::InstanceFinished {
            key: key("work[a]"),
            outcome: Arc::new(Outcome::ended(
                Status::Done,
                StopReason::Met(crate::stop_reason::Condition::DoneFile),
            )),
        });
        let header = t.header();
        assert!(
            header.starts_with(
                "done 1/6 · running 1 · queued 1 · waiting 3 · $0.42 of $5.00 · 12.3k tokens · "
            ),
            "{header}"
        );
        assert_eq!(t.cost_of("work[a]"), Some(0.42));
        assert_eq!(t.cost_of("work[b]"), None);
    }
}
