//! Owns the units that are running: each started through the launcher
//! under a launch number of its own (a unit can outlive its job: a watch's
//! re-plan keeps it under the new plan's job, or stops it), and whose it is
//! now.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::incremental::fingerprint::Fingerprint;
use crate::runner::job::JobId;
use crate::runner::launcher::UnitFuture;
use crate::runner::outcome::{Outcome, Status};
use crate::stop_reason::StopReason;

/// A unit's launch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct LaunchId(u64);

/// Whose a running unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Job(JobId),
    /// Kept by a re-plan; its new job is found when that job is reached.
    Adopted,
    /// Invalidated by a re-plan, being stopped.
    Invalidated,
}

/// A unit that is running.
#[derive(Debug)]
pub(super) struct Launched {
    pub(super) owner: Owner,
    pub(super) key: Arc<str>,
    /// Its program node's id (node indices change with a re-plan).
    pub(super) node: String,
    /// It holds a slot of its node's `max_parallel` (agent units do).
    pub(super) slot: bool,
    pub(super) fingerprint: Arc<Fingerprint>,
    /// Fired to stop it when a re-plan invalidates it.
    pub(super) cancel: CancellationToken,
    /// Fired when a person stops it.
    pub(super) stopped: CancellationToken,
}

/// The running units.
#[derive(Debug, Default)]
pub(super) struct Units {
    set: JoinSet<(LaunchId, Outcome)>,
    launches: HashMap<LaunchId, Launched>,
    /// Each unit's task, to know which one a panic ended.
    tasks: HashMap<tokio::task::Id, LaunchId>,
    next: u64,
}

impl Units {
    /// Runs `unit` as `launched`.
    pub(super) fn spawn(&mut self, launched: Launched, unit: UnitFuture) {
        let id = LaunchId(self.next);
        self.next += 1;
        self.launches.insert(id, launched);
        let task = self.set.spawn(async move { (id, unit.await) });
        self.tasks.insert(task.id(), id);
    }

    /// The next unit to end, with what it was launched as; `None` when none
    /// runs.
    pub(super) async fn next(&mut self) -> Option<(Launched, Outcome)> {
        loop {
            let (task, id, outcome) = match self.set.join_next_with_id().await? {
                Ok((task, (id, outcome))) => (task, id, outcome),
                Err(e) => {
                    // A bug in conductor, not in the workflow: the instance
                    // fails with it, and the apply goes on.
                    let Some(&id) = self.tasks.get(&e.id()) else {
                        continue;
                    };
                    let mut out = Outcome::ended(Status::Failed, StopReason::InternalError);
                    out.error = Some(format!("conductor failed running this instance: {e}"));
                    (e.id(), id, out)
                }
            };
            self.tasks.remove(&task);
            if let Some(l) = self.launches.remove(&id) {
                return Some((l, outcome));
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.launches.len()
    }

    pub(super) fn launches(&self) -> impl Iterator<Item = &Launched> {
        self.launches.values()
    }

    pub(super) fn launches_mut(&mut self) -> impl Iterator<Item = (LaunchId, &mut Launched)> {
        self.launches.iter_mut().map(|(id, l)| (*id, l))
    }

    pub(super) fn get_mut(&mut self, id: LaunchId) -> Option<&mut Launched> {
        self.launches.get_mut(&id)
    }
}
