//! Owns what a merge node's run is given (its job, what it merges and the
//! instances to merge, as they ended) and how it runs git work off the
//! async workers.

use std::path::PathBuf;
use std::sync::Arc;

use crate::isolation::Place;
use crate::runner::event::Event;
use crate::runner::job::{AgentJob, Job, MergeJob};
use crate::runner::outcome::{Outcome, Status};
use crate::stop_reason::StopReason;

/// What running a merge node takes.
#[derive(Debug)]
pub(crate) struct MergeStart {
    pub shared: Arc<crate::runner::context::Shared>,
    pub job: Arc<Job>,
    pub merge: Arc<MergeJob>,
    /// The instances of the nodes it merges, in order, as they ended.
    pub sources: Vec<Source>,
    /// Where it reports each branch merged or left (and its resolving
    /// agent's iterations).
    pub events: tokio::sync::mpsc::UnboundedSender<Event>,
    /// Fired when a watch's re-plan invalidates it.
    pub cancel: tokio_util::sync::CancellationToken,
    /// Fired when a person stops it.
    pub stopped: tokio_util::sync::CancellationToken,
}

impl MergeStart {
    /// Why the merge is to stop now, when it is: Ctrl-C (or SIGTERM), a
    /// watch's re-plan, or a person's stop.
    pub(super) fn stopping(&self) -> Option<StopReason> {
        if self.shared.stop_level() > crate::process::StopLevel::Running {
            Some(StopReason::Interrupted)
        } else if self.cancel.is_cancelled() {
            Some(StopReason::Invalidated)
        } else if self.stopped.is_cancelled() {
            Some(StopReason::Stopped)
        } else {
            None
        }
    }
}

/// Runs one agent loop (a resolving agent's) to its end, given its job,
/// its agent and its owner's cancellation and stop tokens: handed in by
/// whoever runs the merge, so that merging needs no knowledge of how a
/// loop is run (and a loop that resolves its needs' conflicts can run one).
pub(crate) type LoopRunner = Arc<
    dyn Fn(
            Arc<Job>,
            Arc<AgentJob>,
            (
                tokio_util::sync::CancellationToken,
                tokio_util::sync::CancellationToken,
            ),
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>>
        + Send
        + Sync,
>;

/// One instance of a node a merge lands, as it ended.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Source {
    pub instance: Arc<str>,
    pub branch: String,
    pub status: Status,
    pub stop_reason: String,
    /// Its task folder, whose TASK.md a resolving agent is told.
    pub task_dir: Option<PathBuf>,
}

/// Runs git work on `place` off the async workers (a merge's, and an
/// isolated loop's).
pub(crate) async fn git<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
    place: &Arc<Place>,
    work: impl FnOnce(&Place) -> Result<T, E> + Send + 'static,
) -> Result<T, String> {
    let place = Arc::clone(place);
    match tokio::task::spawn_blocking(move || work(&place)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the worktree's git work panicked: {e}")),
    }
}
