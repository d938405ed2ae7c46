//! Owns why a node instance or one of its runs ended: every stop reason
//! conductor records, each with the name the run store, the bus, `--json`,
//! JUnit and templates (`needs.X.stop_reason`, `previous.stop_reason`) spell
//! it with. docs/run-store.md lists them for users. Names are part of the
//! on-disk format: they are written once here and never change.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A success condition of a Ralph loop (docs/workflow-format.md, `stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Condition {
    DoneFile,
    Promise,
    OutputMatches,
    Command,
    Expr,
    ExitZero,
}

impl Condition {
    pub(crate) const ALL: [Self; 6] = [
        Self::DoneFile,
        Self::Promise,
        Self::OutputMatches,
        Self::Command,
        Self::Expr,
        Self::ExitZero,
    ];

    /// The condition's key in a workflow's `stop` table.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::DoneFile => "done_file",
            Self::Promise => "promise",
            Self::OutputMatches => "output_matches",
            Self::Command => "command",
            Self::Expr => "expr",
            Self::ExitZero => "exit_zero",
        }
    }
}

/// Why an instance (or one run of it) ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum StopReason {
    // Done.
    /// This success condition held.
    Met(Condition),
    /// Every success condition held (`all = true` with more than one).
    All,
    /// A gate's expression was true.
    GateTrue,
    /// A run-time fan-out or a sub-workflow whose instances all ended done.
    Done,
    /// A run-time fan-out whose source gave no items.
    NoItems,
    /// A merge node landed every branch it merges.
    Merged,
    /// A sub-workflow's `[success]` commands passed.
    SuccessCommands,
    /// Not run: its last completed run has the fingerprint it has now.
    UpToDate,

    // A run that does not finish the instance, and the loop goes on.
    /// No success condition held.
    NotDone,
    /// The agent reported failure (a non-zero exit, `is_error`, `turn.failed`).
    AgentError,
    /// The answer's JSON is missing or does not match the schema.
    InvalidJson,

    // Failed: a limit.
    MaxIterations,
    Timeout,
    IdleTimeout,
    Deadline,
    BudgetUsd,
    BudgetTokens,
    /// The workflow's `max_agents` is used up.
    MaxAgents,
    /// `stall` iterations in a row changed nothing.
    Stall,
    // Failed: an error.
    /// The prompt could not be rendered.
    RenderError,
    /// The agent's program is not there (or not executable).
    AgentMissing,
    /// The task folder could not be written.
    StoreError,
    /// An isolated instance's worktree could not be made ready or its
    /// iteration committed.
    WorktreeError,
    /// An isolated instance's needs' work could not be merged into its
    /// worktree: their changes conflict.
    MergeConflict,
    /// A merge node left branches unmerged: they conflicted, failed its
    /// `verify`, or its target could not be moved.
    Unmerged,
    /// A success condition could not be evaluated (an `expr` error, a
    /// `command` that could not start).
    StopError,
    /// An HTTP agent's API kept failing, or refused the call.
    BackendError,
    GateFalse,
    GateError,
    /// A run-time fan-out's source answer is not a list where one is read.
    FanOutSource,
    /// A run-time fan-out's source gave more than `max_items` items.
    MaxItems,
    /// An instance of a fanned-out node failed.
    InstanceFailed,
    /// A sub-workflow's `[success]` command failed.
    SuccessFailed,
    /// Conductor itself failed while running the instance (a bug).
    InternalError,

    // Stopped from outside.
    /// Ctrl-C, SIGTERM or SIGHUP.
    Interrupted,
    /// A watch's re-plan changed what it was doing.
    Invalidated,
    /// A person stopped it (`conductor serve`'s stop of one instance).
    Stopped,
    /// Its conductor died while it ran (found by the next apply).
    ConductorDied,
    /// The machine its unit ran on was lost (a Slurm job that ended
    /// without the unit's outcome: docs/distributed.md).
    WorkerLost,
    /// Not run: `--fail-fast` stopped the apply after a failure.
    FailFast,
    /// Not run: this need of it did not finish.
    Skipped {
        need: Arc<str>,
    },
}

const SKIPPED_PREFIX: &str = "needs `";
const SKIPPED_SUFFIX: &str = "`, which did not finish";

impl StopReason {
    /// The name of every reason but `Skipped`, whose text names its need.
    fn name(&self) -> Option<&'static str> {
        Some(match self {
            Self::Met(c) => c.as_str(),
            Self::All => "all",
            Self::GateTrue => "gate_true",
            Self::Done => "done",
            Self::NoItems => "no_items",
            Self::Merged => "merged",
            Self::SuccessCommands => "success_commands",
            Self::UpToDate => "up_to_date",
            Self::NotDone => "not_done",
            Self::AgentError => "agent_error",
            Self::InvalidJson => "invalid_json",
            Self::MaxIterations => "max_iterations",
            Self::Timeout => "timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::Deadline => "deadline",
            Self::BudgetUsd => "budget_usd",
            Self::BudgetTokens => "budget_tokens",
            Self::MaxAgents => "max_agents",
            Self::Stall => "stall",
            Self::RenderError => "render_error",
            Self::AgentMissing => "agent_missing",
            Self::StoreError => "store_error",
            Self::WorktreeError => "worktree_error",
            Self::MergeConflict => "merge_conflict",
            Self::Unmerged => "unmerged",
            Self::StopError => "stop_error",
            Self::BackendError => "backend_error",
            Self::GateFalse => "gate_false",
            Self::GateError => "gate_error",
            Self::FanOutSource => "fan_out_source",
            Self::MaxItems => "max_items",
            Self::InstanceFailed => "instance_failed",
            Self::SuccessFailed => "success_failed",
            Self::InternalError => "internal_error",
            Self::Interrupted => "interrupted",
            Self::Invalidated => "invalidated",
            Self::Stopped => "stopped",
            Self::ConductorDied => "conductor_died",
            Self::WorkerLost => "worker_lost",
            Self::FailFast => "fail_fast",
            Self::Skipped { .. } => return None,
        })
    }

    /// Every reason with a fixed name, for reading names back.
    const NAMED: [Self; 39] = [
        Self::All,
        Self::GateTrue,
        Self::Done,
        Self::NoItems,
        Self::Merged,
        Self::SuccessCommands,
        Self::UpToDate,
        Self::NotDone,
        Self::AgentError,
        Self::InvalidJson,
        Self::MaxIterations,
        Self::Timeout,
        Self::IdleTimeout,
        Self::Deadline,
        Self::BudgetUsd,
        Self::BudgetTokens,
        Self::MaxAgents,
        Self::Stall,
        Self::RenderError,
        Self::AgentMissing,
        Self::StoreError,
        Self::WorktreeError,
        Self::MergeConflict,
        Self::Unmerged,
        Self::StopError,
        Self::BackendError,
        Self::GateFalse,
        Self::GateError,
        Self::FanOutSource,
        Self::MaxItems,
        Self::InstanceFailed,
        Self::SuccessFailed,
        Self::InternalError,
        Self::Interrupted,
        Self::Stopped,
        Self::Invalidated,
        Self::ConductorDied,
        Self::WorkerLost,
        Self::FailFast,
    ];

    /// Reads a reason back as it was written; `None` for text that no
    /// version of conductor writes (a record of another tool's).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        if let Some(c) = Condition::ALL.into_iter().find(|c| c.as_str() == text) {
            return Some(Self::Met(c));
        }
        if let Some(need) = text
            .strip_prefix(SKIPPED_PREFIX)
            .and_then(|t| t.strip_suffix(SKIPPED_SUFFIX))
        {
            return Some(Self::Skipped { need: need.into() });
        }
        Self::NAMED.into_iter().find(|r| r.name() == Some(text))
    }

    /// The reasons of an instance that did not end by itself: it resumes
    /// when the apply is continued.
    pub(crate) fn is_interruption(&self) -> bool {
        matches!(
            self,
            Self::Interrupted | Self::Invalidated | Self::ConductorDied | Self::WorkerLost
        )
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self) {
            (Some(name), _) => f.write_str(name),
            (None, Self::Skipped { need }) => {
                write!(f, "{SKIPPED_PREFIX}{need}{SKIPPED_SUFFIX}")
            }
            (None, _) => Ok(()),
        }
    }
}

impl Serialize for StopReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StopReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a stop reason")))
    }
}

impl From<Condition> for StopReason {
    fn from(c: Condition) -> Self {
        Self::Met(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_as_it_was_written() {
        let mut all: Vec<StopReason> = StopReason::NAMED.to_vec();
        all.extend(Condition::ALL.map(StopReason::Met));
        all.push(StopReason::Skipped {
            need: "work[a b]".into(),
        });
        let mut names = std::collections::HashSet::new();
        for r in all {
            let text = r.to_string();
            assert!(names.insert(text.clone()), "{text} is written twice");
            assert_eq!(StopReason::parse(&text), Some(r), "{text}");
        }
        assert_eq!(StopReason::parse("something else"), None);
    }

    #[test]
    fn every_name_is_explained_to_users() {
        let doc = include_str!("../docs/run-store.md");
        for r in StopReason::NAMED
            .into_iter()
            .chain(Condition::ALL.map(StopReason::Met))
        {
            assert!(
                doc.contains(&format!("`{r}`")),
                "docs/run-store.md does not explain `{r}`"
            );
        }
        assert!(doc.contains("``needs `X`, which did not finish``"));
    }

    #[test]
    fn names_are_the_ones_records_hold() {
        assert_eq!(
            StopReason::Met(Condition::DoneFile).to_string(),
            "done_file"
        );
        assert_eq!(StopReason::UpToDate.to_string(), "up_to_date");
        assert_eq!(
            StopReason::Skipped { need: "a".into() }.to_string(),
            "needs `a`, which did not finish"
        );
        assert_eq!(
            serde_json::to_string(&StopReason::MaxIterations).unwrap(),
            "\"max_iterations\""
        );
    }
}
