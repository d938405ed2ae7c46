//! Owns what a finished instance is: its status, why it stopped, what it
//! answered and what it cost, and how that is shown to templates as
//! `needs.X` (docs/workflow-format.md).

use std::path::PathBuf;
use std::time::Duration;

use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use crate::agents::usage::Usage;
use crate::stop_reason::StopReason;

/// An instance's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Done,
    Failed,
    Skipped,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// A finished instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub status: Status,
    /// The condition that held when done; the limit hit when failed; why when skipped.
    pub stop_reason: StopReason,
    pub iterations: u32,
    /// The last iteration's final answer, capped for templates.
    pub output: String,
    pub json: Option<serde_json::Value>,
    /// Why it failed, when the stop reason alone does not say (a template
    /// error, a missing program, a fan-out source that is not a list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub usage: Usage,
    pub task_id: Option<String>,
    pub task_dir: Option<PathBuf>,
    /// The last run's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// For an up-to-date instance: the stop reason of the run that made
    /// its result (`exit_zero`, `done_file`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_stop_reason: Option<String>,
    /// An isolated instance's branch and what it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worktree: Option<Box<WorktreeResult>>,
    /// A merge node's report: what it merged and what it left, and why
    /// (docs/isolation.md, "Merge nodes").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<Box<serde_json::Value>>,
    /// The job that ran its loop elsewhere (docs/distributed.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<crate::store::ExecutorJob>>,
    /// The fingerprint it completed with, when not the one it started with.
    #[serde(skip)]
    pub fingerprint: Option<std::sync::Arc<crate::incremental::fingerprint::Fingerprint>>,
    #[serde(serialize_with = "millis", deserialize_with = "from_millis")]
    pub duration: Duration,
}

fn from_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Outcome {
    /// An instance that never ran.
    pub(crate) fn skipped(reason: StopReason) -> Self {
        Self::ended(Status::Skipped, reason)
    }

    /// An instance that ended without running an agent (a gate, a fan-out).
    pub(crate) fn ended(status: Status, reason: StopReason) -> Self {
        Self {
            status,
            stop_reason: reason,
            iterations: 0,
            output: String::new(),
            json: None,
            error: None,
            exit_code: None,
            usage: Usage::default(),
            task_id: None,
            task_dir: None,
            run_id: None,
            result_stop_reason: None,
            worktree: None,
            merge: None,
            job: None,
            fingerprint: None,
            duration: Duration::ZERO,
        }
    }

    /// `needs.X` for one instance of X.
    pub(crate) fn to_value(&self, item: Option<&serde_json::Value>) -> Value {
        context! {
            output => self.output.as_str(),
            json => self.json.as_ref().map_or(Value::UNDEFINED, crate::prompt::context),
            status => self.status.as_str(),
            stop_reason => self.stop_reason.to_string(),
            iterations => self.iterations,
            item => item.map(crate::prompt::context),
            cost_usd => self.usage.cost_usd,
            task_dir => self.task_dir.as_ref().map(|d| d.display().to_string()),
            branch => self.worktree.as_ref().map(|w| w.branch.as_str()),
            worktree => self.worktree.as_ref().map(|w| w.path.display().to_string()),
            changed => self.worktree.as_ref().map(|w| w.files.clone()),
        }
    }
}

/// An isolated instance's work (docs/isolation.md): its branch, the
/// commit it started from and the one it ended on, and the files it
/// changed between them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct WorktreeResult {
    pub branch: String,
    pub path: PathBuf,
    pub base: String,
    pub head: String,
    pub files: Vec<String>,
    pub insertions: u64,
    pub deletions: u64,
    /// Changed files outside the node's declared `writes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outside_writes: Vec<String>,
}

impl WorktreeResult {
    /// `3 files, +10 -2`.
    pub(crate) fn stat(&self) -> String {
        let n = self.files.len();
        format!(
            "{n} file{}, +{} -{}",
            if n == 1 { "" } else { "s" },
            self.insertions,
            self.deletions
        )
    }
}

/// Follows a dotted path (`json.tasks`, `json.items.0.name`) into a result.
pub(crate) fn at_path<'a>(
    root: &'a serde_json::Value,
    path: &str,
) -> Option<&'a serde_json::Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(root, |v, part| match v {
            serde_json::Value::Object(m) => m.get(part),
            serde_json::Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_index_objects_and_arrays() {
        let v = serde_json::json!({"json": {"items": [{"name": "a"}]}});
        assert_eq!(
            at_path(&v, "json.items.0.name"),
            Some(&serde_json::json!("a"))
        );
        assert_eq!(at_path(&v, "json.missing"), None);
    }
}
