//! Owns an isolated instance's worktree during its loop: made ready before
//! its first iteration (what that found and did said on its task bus),
//! each iteration's changes committed to its branch, and what the branch
//! changed against its base when the loop ends (docs/isolation.md).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use super::context::Shared;
use super::fan_in::Resolving;
use super::iteration;
use super::job::{Isolated, Job};
use super::merge::{Source, git};
use super::outcome::WorktreeResult;
use crate::agents::usage::Usage;
use crate::isolation::{Place, WorktreeError};
use crate::stop_reason::StopReason;
use crate::writes::Writes;

/// An isolated loop's worktree.
#[derive(Debug)]
pub(super) struct Tree {
    place: Arc<Place>,
    /// Held while the loop runs, so `conductor gc` leaves the worktree be.
    _held: std::fs::File,
    /// `<workflow> <instance>`, for commit messages.
    label: String,
}

/// Makes `job`'s worktree ready (`resume` continues its branch); the tree,
/// and the job as it runs there: its workdir in the worktree. What went
/// wrong, in words, when it cannot be had.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site, the unit's; a struct would only rename them"
)]
pub(super) async fn open(
    shared: &Shared,
    job: &Job,
    iso: &Isolated,
    resume: bool,
    merge: &[Source],
    resolving: Option<&Resolving<'_>>,
    bus: &Path,
    task_id: &str,
) -> Result<(Tree, Arc<Job>, Usage), (StopReason, String, Usage)> {
    let failed = |reason, why: String| (reason, why, Usage::default());
    let place = Place::new(&iso.base, &iso.workflow, &job.key, &job.workdir)
        .map(Arc::new)
        .map_err(|e| failed(StopReason::WorktreeError, e.to_string()))?;
    let held = place
        .hold()
        .map_err(|e| failed(StopReason::WorktreeError, e.to_string()))?;
    let pairs: Vec<(String, String)> = merge
        .iter()
        .map(|s| (s.instance.to_string(), s.branch.clone()))
        .collect();
    let keep_conflict = resolving.is_some();
    let label = format!("{} {}", iso.workflow, job.key);
    let interrupted = format!("conductor: {label}, work an interrupted iteration left");
    let opening = Arc::clone(&place);
    let mut opened = match tokio::task::spawn_blocking(move || {
        opening.open(resume, &interrupted, &pairs, keep_conflict)
    })
    .await
    {
        Ok(Ok(o)) => o,
        Ok(Err(e @ WorktreeError::Conflict { .. })) => {
            return Err(failed(StopReason::MergeConflict, e.to_string()));
        }
        Ok(Err(e)) => return Err(failed(StopReason::WorktreeError, e.to_string())),
        Err(e) => {
            return Err(failed(
                StopReason::WorktreeError,
                format!("the worktree's git work panicked: {e}"),
            ));
        }
    };
    let mut usage = Usage::default();
    if let (Some(pending), Some(r)) = (opened.conflict.take(), resolving) {
        usage = super::fan_in::resolve_all(&place, pending, r).await?;
    }
    let short = |c: &str| c[..c.len().min(12)].to_string();
    let mut meta = vec![
        ("instance", job.key.to_string()),
        ("branch", place.branch.clone()),
        ("worktree", place.path.display().to_string()),
        ("base", place.base.commit.clone()),
    ];
    let mut body = format!(
        "worktree {} on branch {} from {}",
        place.path.display(),
        place.branch,
        short(&place.base.commit)
    );
    if let Some(c) = &opened.recovered {
        meta.push(("recovered", c.clone()));
        let _ = write!(
            body,
            "\nwork an interrupted iteration left uncommitted is committed as {}",
            short(c)
        );
    }
    if let Some(kept) = &opened.kept {
        meta.push(("kept", kept.clone()));
        let _ = write!(
            body,
            "\nan earlier run's work, not in the base, is kept on branch {kept}"
        );
    }
    iteration::post(shared, bus, "INFO", task_id, "", meta, &body);
    let there = Arc::new(Job {
        workdir: place.workdir.clone(),
        isolation: Some(Arc::new(Isolated {
            base: iso.base.clone(),
            workflow: iso.workflow.clone(),
            sandbox: iso.sandbox,
            network: iso.network,
            worktree: Some(place.path.clone()),
        })),
        ..job.clone()
    });
    Ok((
        Tree {
            place,
            _held: held,
            label,
        },
        there,
        usage,
    ))
}

impl Tree {
    /// Commits what iteration `n` (run `run_id`) changed; the commit, or
    /// `None` when it changed nothing.
    pub(super) async fn commit(&self, n: u32, run_id: &str) -> Result<Option<String>, String> {
        let message = format!("conductor: {} iteration {n}\n\nrun: {run_id}", self.label);
        git(&self.place, move |p| p.commit(&message)).await
    }

    pub(super) fn branch(&self) -> &str {
        &self.place.branch
    }

    /// The branch and what it changed against the base; the changes
    /// outside `writes`, when the node declares them.
    pub(super) async fn result(&self, writes: Option<&Writes>) -> Result<WorktreeResult, String> {
        let changes = git(&self.place, Place::changes).await?;
        // `writes` are relative to the workdir; changes to the repository.
        let rel = self
            .place
            .workdir
            .strip_prefix(&self.place.path)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let outside_writes = writes.map_or_else(Vec::new, |w| {
            changes
                .files
                .iter()
                .filter(|f| {
                    Path::new(f.as_str())
                        .strip_prefix(&rel)
                        .ok()
                        .and_then(Path::to_str)
                        .is_none_or(|in_workdir| !w.allows(in_workdir))
                })
                .cloned()
                .collect()
        });
        Ok(WorktreeResult {
            outside_writes,
            branch: self.place.branch.clone(),
            path: self.place.path.clone(),
            base: self.place.base.commit.clone(),
            head: changes.head,
            files: changes.files,
            insertions: changes.insertions,
            deletions: changes.deletions,
        })
    }
}
