//! `run-info.yaml`: one run's record. Every field the Go seed writes, in its
//! order, then conductor's own as flat scalars (the seed's reader ignores
//! keys it does not know). Written atomically; updated under a lock file
//! that is never deleted (deleting it, as the seed does, lets two updaters
//! hold "the" lock at once).

use std::fs::OpenOptions;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::atomic::write_atomic;

/// The Go zero time, which the seed writes as `end_time` while a run runs.
pub const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub version: u32,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_run_id: Option<String>,
    pub project_id: String,
    pub task_id: String,
    /// The agent kind (`claude`, `command`...).
    pub agent: String,
    /// `managed` for a local process, `external` for an HTTP agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_ownership: Option<String>,
    pub pid: i64,
    pub pgid: i64,
    pub start_time: String,
    /// [`NOT_ENDED`] while the run runs.
    pub end_time: String,
    /// -1 while the run runs.
    pub exit_code: i64,
    /// `running`, `completed` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commandline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_summary: Option<String>,
    #[serde(default)]
    pub agent_version: String,
    // Conductor's own fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Why the iteration did not finish its node (docs/console.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// How the run's processes were contained (docs/security.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment: Option<String>,
    /// An isolated run's branch and the commit its instance started from
    /// (docs/isolation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunInfoError {
    #[error("cannot access {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid run-info.yaml: {message}")]
    Invalid { path: String, message: String },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> RunInfoError + '_ {
    move |source| RunInfoError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl RunInfo {
    fn text(&self, path: &Path) -> Result<String, RunInfoError> {
        serde_saphyr::to_string(self).map_err(|e| RunInfoError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Writes the record atomically.
    pub fn write(&self, path: &Path) -> Result<(), RunInfoError> {
        write_atomic(path, self.text(path)?.as_bytes()).map_err(io_err(path))
    }

    /// Writes the record atomically but without fsync: for the `running`
    /// record, which the durable terminal record replaces.
    pub fn write_running(&self, path: &Path) -> Result<(), RunInfoError> {
        super::atomic::write_atomic_fast(path, self.text(path)?.as_bytes()).map_err(io_err(path))
    }

    pub fn read(path: &Path) -> Result<Self, RunInfoError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        serde_saphyr::from_str(&text).map_err(|e| RunInfoError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Writes `current` after `change`, durably, under the record's lock:
    /// for the writer that owns the record and so need not read it back.
    pub fn replace(
        path: &Path,
        mut current: Self,
        change: impl FnOnce(&mut Self),
    ) -> Result<Self, RunInfoError> {
        locked(path, || {
            change(&mut current);
            current.write(path).map(|()| current)
        })
    }

    /// Read, change and write back under `<path>.lock`, so that concurrent
    /// updaters (the engine, a resumed apply) do not lose each other's changes.
    pub fn update(path: &Path, change: impl FnOnce(&mut Self)) -> Result<Self, RunInfoError> {
        locked(path, || {
            let mut info = Self::read(path)?;
            change(&mut info);
            info.write(path).map(|()| info)
        })
    }
}

/// Runs `f` holding `<path>.lock`, a lock file that is never deleted (the
/// seed deletes its lock files, which breaks mutual exclusion).
fn locked<T>(path: &Path, f: impl FnOnce() -> Result<T, RunInfoError>) -> Result<T, RunInfoError> {
    let lock_path = path.with_extension("yaml.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    lock.lock().map_err(io_err(&lock_path))?;
    let result = f();
    let _ = lock.unlock();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunInfo {
        RunInfo {
            version: 1,
            run_id: "000001-20260301-101502".into(),
            parent_run_id: None,
            previous_run_id: None,
            project_id: "demo".into(),
            task_id: "task-20260301-101502-fix-abc123".into(),
            agent: "command".into(),
            process_ownership: Some("managed".into()),
            pid: 4242,
            pgid: 4242,
            start_time: "2026-03-01T10:15:02.123456789Z".into(),
            end_time: NOT_ENDED.into(),
            exit_code: -1,
            status: "running".into(),
            cwd: Some("/work".into()),
            prompt_path: None,
            output_path: None,
            stdout_path: None,
            stderr_path: None,
            commandline: Some("cat".into()),
            error_summary: None,
            agent_version: String::new(),
            workflow: Some("hello".into()),
            node: Some("greet".into()),
            item: Some("world: yes".into()),
            iteration: Some(1),
            stop_reason: None,
            why: None,
            fingerprint: None,
            input_tokens: None,
            output_tokens: None,
            cost_usd: None,
            containment: None,
            branch: None,
            base: None,
        }
    }

    #[test]
    fn round_trips_and_keeps_the_seed_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-info.yaml");
        sample().write(&path).unwrap();
        assert_eq!(RunInfo::read(&path).unwrap(), sample());
        let text = std::fs::read_to_string(&path).unwrap();
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once(':').map(|(k, _)| k))
            .collect();
        assert_eq!(&keys[..4], ["version", "run_id", "project_id", "task_id"]);
        assert!(
            keys.iter().position(|k| *k == "agent_version")
                < keys.iter().position(|k| *k == "workflow")
        );
    }

    #[test]
    fn updates_keep_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-info.yaml");
        sample().write(&path).unwrap();
        let done = RunInfo::update(&path, |i| {
            i.exit_code = 0;
            i.status = "completed".into();
            i.end_time = "2026-03-01T10:15:04Z".into();
            i.stop_reason = Some("done_file".into());
        })
        .unwrap();
        assert_eq!(RunInfo::read(&path).unwrap(), done);
        assert!(dir.path().join("run-info.yaml.lock").exists());
    }
}
