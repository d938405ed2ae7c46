//! Owns the resolution of conflicts between an isolated instance's needs'
//! branches when its node names a resolving agent (`on_conflict`,
//! docs/isolation.md, "Fan-in"): each conflict left in the worktree is
//! handed to that agent, as a merge node's are, and once it is resolved
//! the remaining branches are merged; a conflict it does not resolve is
//! undone and fails the instance with `merge_conflict`, saying why.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::job::{AgentJob, Job};
use super::merge::{Conflict, LoopRunner, Source, git, resolve};
use super::outcome::Status;
use crate::agents::usage::Usage;
use crate::isolation::{Pending, Place, need_merge_message};
use crate::stop_reason::StopReason;

/// What resolving an instance's conflicts takes.
pub(super) struct Resolving<'a> {
    /// The instance whose needs conflict.
    pub owner: &'a Arc<Job>,
    /// Its resolving agent's loop, and how it is run.
    pub agent: &'a Arc<AgentJob>,
    pub run_loop: &'a LoopRunner,
    /// The instance's cancellation (a re-plan) and stop (a person's).
    pub stop: (&'a CancellationToken, &'a CancellationToken),
    /// Its needs' branches, with their task folders.
    pub sources: &'a [Source],
}

/// Resolves `pending` and every conflict after it; what the resolving
/// agent used, or why the instance cannot start.
pub(super) async fn resolve_all(
    place: &Arc<Place>,
    mut pending: Pending,
    r: &Resolving<'_>,
) -> Result<Usage, (StopReason, String, Usage)> {
    let mut usage = Usage::default();
    let name = r.agent.name();
    loop {
        let failed = |why: String, usage: Usage| (StopReason::WorktreeError, why, usage);
        let before = match git(place, Place::head).await {
            Ok(h) => h,
            Err(why) => return Err(failed(why, usage)),
        };
        let source = r
            .sources
            .iter()
            .find(|s| *s.instance == *pending.from)
            .cloned()
            .unwrap_or_else(|| Source {
                instance: pending.from.as_str().into(),
                branch: pending.branch.clone(),
                status: Status::Done,
                stop_reason: String::new(),
                task_dir: None,
            });
        let message = need_merge_message(&pending.from, &pending.branch);
        let (resolved, used) = resolve(
            Conflict {
                owner: r.owner,
                run_loop: r.run_loop,
                stop: r.stop,
                place,
                target: &place.branch,
                resolver: &name,
                source: &source,
                files: &pending.files,
                message: &message,
                before: &before,
            },
            r.agent,
        )
        .await;
        usage.add(used);
        if let Err(why) = resolved {
            let undo = before.clone();
            if let Err(e) = git(place, move |p| p.undo_to(&undo)).await {
                tracing::warn!("cannot undo a merge in {}: {e}", place.path.display());
            }
            return Err((
                StopReason::MergeConflict,
                format!(
                    "merging the work of {} (branch {}): {why}",
                    pending.from, pending.branch
                ),
                usage,
            ));
        }
        let rest = std::mem::take(&mut pending.rest);
        match git(place, move |p| p.merge_needs(&rest, true)).await {
            Ok(None) => return Ok(usage),
            Ok(Some(next)) => pending = next,
            Err(why) => return Err(failed(why, usage)),
        }
    }
}
