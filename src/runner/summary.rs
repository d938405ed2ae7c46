//! Owns the summary of an apply: every instance's final state in plan
//! order, the `[success]` checks, totals, and the exit code
//! (docs/exit-codes.md).
//! The JSON report is this struct; the console table and JUnit read it.

use serde::Serialize;

use super::outcome::{Outcome, Status};
use crate::agents::usage::Usage;
use crate::exit_code;
use crate::stop_reason::StopReason;

/// One instance, finished.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InstanceSummary {
    pub key: String,
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<serde_json::Value>,
    pub status: Status,
    pub stop_reason: StopReason,
    /// Why it failed, when the stop reason alone does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub iterations: u32,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub usage: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_dir: Option<String>,
    /// Whether this instance's failure fails the apply (`on_failure` is not
    /// `ignore`, and no gate tolerated it).
    #[serde(skip)]
    pub counts: bool,
    /// It failed, and every instance that needs it is a gate that passed
    /// over the failure (docs/workflow-format.md, "Gates"): reported, not
    /// fatal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tolerated: bool,
    /// An isolated instance's branch and what it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree: Option<Box<super::outcome::WorktreeResult>>,
    /// A merge node's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<Box<serde_json::Value>>,
    /// The job that ran it elsewhere (docs/distributed.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<crate::store::ExecutorJob>>,
    /// The answer's head, for the JUnit failure text.
    #[serde(skip)]
    pub output: String,
}

impl InstanceSummary {
    pub(crate) fn new(
        key: &str,
        node: &str,
        item: Option<&serde_json::Value>,
        outcome: &Outcome,
        counts: bool,
    ) -> Self {
        Self {
            key: key.to_string(),
            node: node.to_string(),
            item: item.cloned(),
            status: outcome.status,
            stop_reason: outcome.stop_reason.clone(),
            error: outcome.error.clone(),
            iterations: outcome.iterations,
            duration_ms: u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
            exit_code: outcome.exit_code,
            usage: outcome.usage,
            task_id: outcome.task_id.clone(),
            task_dir: outcome.task_dir.as_ref().map(|d| d.display().to_string()),
            counts,
            tolerated: false,
            worktree: outcome.worktree.clone(),
            merge: outcome.merge.clone(),
            job: outcome.job.clone(),
            output: outcome
                .error
                .as_deref()
                .unwrap_or(&outcome.output)
                .chars()
                .take(4000)
                .collect(),
        }
    }
}

/// Isolated instances that changed the same files without seeing each
/// other's work (docs/isolation.md, "Overlaps").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Overlap {
    pub instances: Vec<std::sync::Arc<str>>,
    pub files: Vec<String>,
}

/// A `[success]` command's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SuccessSummary {
    pub command: String,
    pub exit_code: i32,
}

/// The whole apply.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub workflow: String,
    pub apply_id: String,
    pub project: String,
    pub root: String,
    pub status: ApplyStatus,
    pub exit_code: u8,
    pub duration_ms: u64,
    pub counts: Counts,
    pub usage: Usage,
    pub instances: Vec<InstanceSummary>,
    pub success: Vec<SuccessSummary>,
    /// Isolated instances that changed the same files side by side.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overlaps: Vec<Overlap>,
}

/// How a whole apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ApplyStatus {
    Done,
    Failed,
    /// Stopped by a signal (Ctrl-C, SIGTERM, SIGHUP).
    Interrupted,
}

impl ApplyStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for ApplyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many instances ended how.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Counts {
    /// Ran, and done (up-to-date instances are counted apart).
    pub done: usize,
    /// Not run: a completed run with the same fingerprint was found.
    pub up_to_date: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Summary {
    /// Fills in counts, usage, status and exit code from the instances.
    pub(crate) fn settle(&mut self, interrupted_by: Option<i32>) {
        let mut counts = Counts::default();
        let mut usage = Usage::default();
        for i in &self.instances {
            match i.status {
                Status::Done if i.stop_reason == StopReason::UpToDate => {
                    counts.up_to_date += 1;
                }
                Status::Done => counts.done += 1,
                Status::Failed => counts.failed += 1,
                Status::Skipped => counts.skipped += 1,
            }
            usage.add(i.usage);
        }
        self.counts = counts;
        self.usage = usage;
        let failed = self
            .instances
            .iter()
            .any(|i| i.status == Status::Failed && i.counts)
            || self.success.iter().any(|s| s.exit_code != 0);
        // The run store failing is the environment's fault, not a node's.
        let store = self
            .instances
            .iter()
            .any(|i| i.stop_reason == StopReason::StoreError);
        (self.status, self.exit_code) = match interrupted_by {
            Some(15) => (ApplyStatus::Interrupted, exit_code::TERMINATED),
            Some(_) => (ApplyStatus::Interrupted, exit_code::INTERRUPTED),
            None if store => (ApplyStatus::Failed, exit_code::ENVIRONMENT),
            None if failed => (ApplyStatus::Failed, exit_code::FAILED),
            None => (ApplyStatus::Done, exit_code::OK),
        };
    }
}
