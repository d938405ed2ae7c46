//! Owns a merge node's report: what it merged, what it left and why, as
//! `--json`, `needs.<merge>.json` and its task folder's `merge.json` hold
//! it, and as a line per branch for `conductor logs` and the web page.

use serde::{Deserialize, Serialize};

use crate::store::layout::TaskDir;

/// A branch merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Merged {
    pub(super) instance: String,
    pub(super) branch: String,
    /// `merged`, `already` (the target held it) or `resolved` (by the
    /// resolving agent).
    pub(super) how: String,
}

/// A branch left unmerged, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Left {
    pub(super) instance: String,
    pub(super) branch: String,
    pub(super) reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) files: Vec<String>,
}

/// What the merge made of its sources, as `needs.<merge>.json` reads it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Report {
    /// Where the work was to land.
    pub(super) target: String,
    /// The merge's own branch, which holds what was merged.
    pub(super) branch: String,
    pub(super) head: String,
    /// Whether the target now holds the merged work.
    pub(super) landed: bool,
    /// Why the target was not moved, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) not_landed: Option<String>,
    pub(super) merged: Vec<Merged>,
    pub(super) unmerged: Vec<Left>,
    /// Instances that did not end done: not merged, and not the merge's failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) not_done: Vec<Left>,
}

/// What the merge in task folder `task` did, a line per branch, when it
/// is a merge's (`conductor logs`).
pub(crate) fn told(task: &TaskDir) -> Option<String> {
    let bytes = std::fs::read(task.merge_report()).ok()?;
    serde_json::from_slice::<Report>(&bytes)
        .ok()
        .map(|r| summary(&r))
}

/// What the merge did, a line per branch.
pub(super) fn summary(report: &Report) -> String {
    let mut lines = Vec::new();
    for m in &report.merged {
        let how = match m.how.as_str() {
            "already" => "already merged",
            "resolved" => "merged (conflicts resolved)",
            _ => "merged",
        };
        lines.push(format!("{}: {how} ({})", m.instance, m.branch));
    }
    for l in report.unmerged.iter().chain(&report.not_done) {
        lines.push(format!("{}: not merged: {}", l.instance, l.reason));
    }
    match &report.not_landed {
        Some(why) => lines.push(format!("{} not moved: {why}", report.target)),
        None if report.target != report.branch => {
            lines.push(format!("{} is at {}", report.target, short(&report.head)));
        }
        None => lines.push(format!("merged work on {}", report.branch)),
    }
    lines.join("\n")
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
