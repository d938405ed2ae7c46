//! Owns what ends a run before the agent does: the iteration's timeout and
//! `idle_timeout`, the node's deadline, a stop of the apply (Ctrl-C,
//! SIGTERM), a watch's re-plan, and for HTTP agents a backend that keeps
//! failing or refuses the call. Process agents and HTTP calls are cut by
//! the same limits.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::time::Instant as TokioInstant;

use super::request::Request;
use crate::process::{Contained, StopLevel, Supervisor};
use crate::stop_reason::StopReason;

/// Why a run ended without an answer to judge: an agent stopped before it
/// exited by itself, or an HTTP call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Cut {
    Timeout,
    IdleTimeout,
    Deadline,
    Interrupted,
    /// A watch's re-plan changed what this run was doing.
    Invalidated,
    /// A person stopped the instance.
    Stopped,
    /// An HTTP agent's API kept failing past the retries, or the time ran
    /// out between them (docs/agents.md): the iteration failed, the loop
    /// goes on.
    Backend,
    /// An HTTP agent's API refused the call for good (400, 401, 403, 404,
    /// no key): the node fails at once.
    Rejected,
}

impl Cut {
    /// The stop reason of a run (and, for most cuts, of its instance).
    pub(crate) fn stop_reason(self) -> StopReason {
        match self {
            Self::Timeout => StopReason::Timeout,
            Self::IdleTimeout => StopReason::IdleTimeout,
            Self::Deadline => StopReason::Deadline,
            Self::Interrupted => StopReason::Interrupted,
            Self::Invalidated => StopReason::Invalidated,
            Self::Stopped => StopReason::Stopped,
            Self::Backend | Self::Rejected => StopReason::BackendError,
        }
    }
}

/// Resolves with the first of the iteration's limits to fire: its
/// timeout, the node's deadline, a stop of the apply, or a watch's re-plan.
pub(super) async fn limit(supervisor: &Supervisor, req: &Request<'_>) -> Cut {
    let deadline = async {
        match req.deadline {
            Some(d) => tokio::time::sleep_until(TokioInstant::from_std(d)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(req.timeout) => Cut::Timeout,
        () = deadline => Cut::Deadline,
        () = supervisor.reached(StopLevel::Graceful) => Cut::Interrupted,
        () = req.cancel.cancelled() => Cut::Invalidated,
        () = req.stopped.cancelled() => Cut::Stopped,
    }
}

/// Waits for a process agent to exit, or for the first limit to fire,
/// `idle_timeout` included: output goes straight to files, so activity is
/// their growth.
pub(super) async fn wait(
    supervisor: &Supervisor,
    agent: &mut Contained,
    req: &Request<'_>,
    started: Instant,
    watched: [&Path; 2],
) -> Option<Cut> {
    let idle = async {
        let Some(limit) = req.idle_timeout else {
            return std::future::pending().await;
        };
        let every = (limit / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let size = || {
            watched
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum::<u64>()
        };
        let mut last = size();
        let mut quiet_since = started;
        loop {
            tokio::time::sleep(every).await;
            let now = size();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= limit {
                return;
            }
        }
    };
    tokio::select! {
        _ = agent.wait() => None,
        cut = limit(supervisor, req) => Some(cut),
        () = idle => Some(Cut::IdleTimeout),
    }
}
