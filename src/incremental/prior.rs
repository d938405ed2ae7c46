//! Owns what earlier applies of the workflow left that this one builds on
//! (docs/watch.md): instances whose latest completed run has the
//! fingerprint they have now are up to date and are not run again (their
//! answer can be read back from the run store for whoever needs it), and,
//! when this apply continues an unfinished one, instances that were
//! interrupted resume their loop where it stopped.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::agents::answer::read_capped;
use crate::stop_reason::StopReason;
use crate::store::index::InstanceRecord;

/// Earlier records this apply may use.
#[derive(Debug, Default)]
pub(crate) struct Prior {
    project_dir: PathBuf,
    /// The workflow's index, shared with the session that keeps it.
    index: Arc<crate::store::index::Index>,
    /// The task folders in the project folder, listed once when first
    /// asked: one read of the folder instead of a lookup per instance.
    tasks: OnceLock<Option<HashSet<OsString>>>,
    /// Instance keys interrupted in the apply being continued, with their record.
    interrupted: BTreeMap<String, InstanceRecord>,
    /// Run-time instances `--force` names.
    forced_later: HashSet<String>,
}

impl Prior {
    /// From the workflow's index; `continued` is the apply being continued, if any.
    pub(crate) fn new(
        project_dir: PathBuf,
        index: Arc<crate::store::index::Index>,
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
            index,
            tasks: OnceLock::new(),
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
        let record = self.index.done.get(key)?;
        if record.fingerprint != hash {
            return None;
        }
        let task_dir = self.project_dir.join(&record.task_id);
        self.task_exists(&record.task_id, &task_dir)
            .then(|| Completed {
                task_id: record.task_id.clone(),
                run_id: Some(record.run_id.clone()).filter(|r| !r.is_empty()),
                iterations: record.iterations,
                stop_reason: record.stop_reason.clone(),
                failed: record.status == "failed",
                task_dir,
            })
    }

    /// Lists the task folders again when next asked (a watch's re-plan:
    /// one may have been deleted since).
    pub(crate) fn look_again(&mut self) {
        self.tasks = OnceLock::new();
    }

    /// Whether the task folder `task_id`, `dir`, is there.
    fn task_exists(&self, task_id: &str, dir: &Path) -> bool {
        let mut parts = Path::new(task_id).components();
        let (Some(Component::Normal(name)), None) = (parts.next(), parts.next()) else {
            return dir.is_dir();
        };
        let listed = self.tasks.get_or_init(|| {
            let entries = std::fs::read_dir(&self.project_dir).ok()?;
            Some(
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name())
                    .collect(),
            )
        });
        // Anything else (a link to a folder) is looked up.
        listed.as_ref().is_some_and(|names| names.contains(name)) || dir.is_dir()
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
