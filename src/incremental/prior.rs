//! Owns what earlier applies of the workflow left that this one builds on
//! (docs/watch.md): instances whose latest completed run has the
//! fingerprint they have now are up to date and are not run again (their
//! answer can be read back from the run store for whoever needs it), and,
//! when this apply continues an unfinished one, instances that were
//! interrupted resume their loop where it stopped.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use crate::agents::answer::read_capped;
use crate::stop_reason::StopReason;
use crate::store::index::InstanceRecord;

/// Earlier records this apply may use.
#[derive(Debug, Default)]
pub(crate) struct Prior {
    project_dir: PathBuf,
    done: BTreeMap<String, InstanceRecord>,
    /// Instance keys interrupted in the apply being continued, with their record.
    interrupted: BTreeMap<String, InstanceRecord>,
    /// Run-time instances `--force` names.
    forced_later: HashSet<String>,
}

impl Prior {
    /// From the workflow's index; `continued` is the apply being continued, if any.
    pub(crate) fn new(
        project_dir: PathBuf,
        index: &crate::store::index::Index,
        continued: Option<&str>,
    ) -> Self {
        let interrupted = continued
            .map(|apply| {
                index
                    .last
                    .iter()
                    .filter(|(_, r)| {
                        r.apply_id == apply
                            && (r.status == "running"
                                || StopReason::parse(&r.stop_reason)
                                    .is_some_and(|s| s.is_interruption()))
                    })
                    .map(|(k, r)| (k.clone(), r.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            project_dir,
            done: index.done.clone(),
            interrupted,
            forced_later: HashSet::new(),
        }
    }

    pub(crate) fn force_later(&mut self, keys: HashSet<String>) {
        self.forced_later = keys;
    }

    /// Whether `--force` named this run-time instance.
    pub(crate) fn forces(&self, key: &str) -> bool {
        self.forced_later.contains(key)
    }

    /// `key`'s latest completed run, when it had fingerprint `hash` and
    /// its task folder is still there: the instance is up to date.
    pub(crate) fn completed(&self, key: &str, hash: &str) -> Option<Completed> {
        let record = self.done.get(key)?;
        let task_dir = self.project_dir.join(&record.task_id);
        (record.fingerprint == hash && task_dir.is_dir()).then(|| Completed {
            task_id: record.task_id.clone(),
            run_id: Some(record.run_id.clone()).filter(|r| !r.is_empty()),
            iterations: record.iterations,
            stop_reason: record.stop_reason.clone(),
            failed: record.status == "failed",
            task_dir,
        })
    }

    /// Whether `key` was interrupted in the apply being continued, with the
    /// fingerprint `hash` it has now: then it resumes with its iteration count.
    pub(crate) fn resumes(&self, key: &str, hash: &str) -> bool {
        self.interrupted
            .get(key)
            .is_some_and(|r| r.fingerprint == hash)
    }
}

/// An instance's latest completed run, found up to date.
#[derive(Debug, Clone)]
pub(crate) struct Completed {
    pub task_id: String,
    pub task_dir: PathBuf,
    /// Its last run.
    pub run_id: Option<String>,
    pub iterations: u32,
    /// Why that run ended its loop.
    pub stop_reason: String,
    /// It failed, and a gate tolerated the failure.
    pub failed: bool,
}

impl Completed {
    /// The answer of its last run, read back (capped) from the run store.
    pub(crate) fn answer(&self) -> Option<String> {
        let run = self.run_id.as_ref()?;
        let path = crate::store::layout::TaskDir::at(self.task_dir.clone())
            .run(run)
            .output();
        Some(read_capped(&path))
    }
}
