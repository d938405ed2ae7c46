//! `run-info.yaml`: one run's record. Every field the Go seed writes, in its
//! order, then conductor's own as flat scalars (the seed's reader ignores
//! keys it does not know). Written atomically; updated under a lock on its
//! task's `.run-info.lock`, a regular file (a lock on a folder holds on one
//! host only over NFS) that is never deleted (the seed deletes its lock
//! files, which lets two updaters hold "the" lock at once), and made once
//! per task, not per run (docs/performance.md).

use std::path::{Path, PathBuf};

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

    /// Writes `current` after `change`, atomically, under the record's
    /// lock: for the writer that owns the record and so need not read it
    /// back. Durable only when `durable` says so: a loop makes its records
    /// durable in groups (docs/performance.md, "Durability").
    pub fn replace(
        path: &Path,
        mut current: Self,
        durable: bool,
        change: impl FnOnce(&mut Self),
    ) -> Result<Self, RunInfoError> {
        locked(path, || {
            change(&mut current);
            let text = current.text(path)?;
            let written = if durable {
                write_atomic(path, text.as_bytes())
            } else {
                super::atomic::write_atomic_fast(path, text.as_bytes())
            };
            written.map(|()| current).map_err(io_err(path))
        })
    }

    /// Makes a record written without waiting for the disk durable.
    pub fn sync(path: &Path) -> Result<(), RunInfoError> {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(io_err(path))
    }

    /// Read, change and write back under the record's lock, so that
    /// concurrent updaters (the engine, a resumed apply) do not lose each
    /// other's changes.
    pub fn update(path: &Path, change: impl FnOnce(&mut Self)) -> Result<Self, RunInfoError> {
        locked(path, || {
            let mut info = Self::read(path)?;
            change(&mut info);
            info.write(path).map(|()| info)
        })
    }
}

/// The file a record is locked through: `<task>/.run-info.lock` for a
/// record in a task's `runs/` folder, else `.run-info.lock` beside it.
fn lock_file(path: &Path) -> PathBuf {
    let run = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match run.parent() {
        Some(runs) if runs.file_name().is_some_and(|n| n == "runs") => {
            runs.parent().unwrap_or(runs).join(".run-info.lock")
        }
        _ => run.join(".run-info.lock"),
    }
}

/// Runs `f` holding the lock on the record's lock file, open for writing
/// (NFS grants an exclusive lock only on such a file).
fn locked<T>(path: &Path, f: impl FnOnce() -> Result<T, RunInfoError>) -> Result<T, RunInfoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let at = lock_file(path);
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&at)
        .map_err(io_err(&at))?;
    lock.lock().map_err(io_err(&at))?;
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
    fn updates_leave_no_file_beside_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("task/runs/000001-20260301-101502");
        std::fs::create_dir_all(&run).unwrap();
        let path = run.join("run-info.yaml");
        sample().write(&path).unwrap();
        let done = RunInfo::update(&path, |i| {
            i.exit_code = 0;
            i.status = "completed".into();
            i.end_time = "2026-03-01T10:15:04Z".into();
            i.stop_reason = Some("done_file".into());
        })
        .unwrap();
        assert_eq!(RunInfo::read(&path).unwrap(), done);
        let names: Vec<_> = std::fs::read_dir(&run)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["run-info.yaml"]);
        // One lock file for the task, whatever its number of runs.
        assert!(dir.path().join("task/.run-info.lock").is_file());
    }

    #[test]
    fn an_update_waits_for_whoever_holds_the_task_lock() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("task/runs/000001-20260301-101502");
        std::fs::create_dir_all(&run).unwrap();
        let path = run.join("run-info.yaml");
        sample().write(&path).unwrap();
        let owner = std::fs::File::create(dir.path().join("task/.run-info.lock")).unwrap();
        owner.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let updater = {
            let path = path.clone();
            std::thread::spawn(move || {
                RunInfo::update(&path, |i| i.status = "failed".into()).unwrap();
                tx.send(()).unwrap();
            })
        };
        // The updater cannot read, change and write while the lock is held.
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(100))
                .is_err()
        );
        let mut completed = sample();
        completed.status = "completed".into();
        completed.exit_code = 0;
        completed.write(&path).unwrap();
        owner.unlock().unwrap();
        updater.join().unwrap();
        // It read the owner's record, not the one before it.
        let info = RunInfo::read(&path).unwrap();
        assert_eq!((info.status.as_str(), info.exit_code), ("failed", 0));
    }
}
