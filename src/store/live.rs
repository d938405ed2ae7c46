//! Owns knowing which applies of a project are alive without reading its
//! bus: each running apply holds an exclusive lock on
//! `<project>/.applies/<apply id>.lock` for as long as its process lives
//! (the kernel drops the lock when it dies, however it dies). A lock file
//! that can be locked by someone else belongs to a dead apply.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

const DIR: &str = ".applies";

/// This process's registration as a live apply.
#[derive(Debug)]
pub struct LiveApply {
    file: File,
    path: PathBuf,
}

impl LiveApply {
    /// Registers `apply_id` as alive. The file is locked before it gets its
    /// name, so no one ever sees it unlocked while its apply runs.
    pub fn register(project_dir: &Path, apply_id: &str) -> std::io::Result<Self> {
        let dir = project_dir.join(DIR);
        crate::private::create_dir_all(&dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".new-").tempfile_in(&dir)?;
        tmp.as_file().lock()?;
        // Its pid, for whoever asks this apply to stop: read from the file
        // whose lock proves the process alive, never from a bus record.
        std::io::Write::write_all(&mut tmp, std::process::id().to_string().as_bytes())?;
        let path = dir.join(format!("{apply_id}.lock"));
        let file = tmp.persist(&path).map_err(|e| e.error)?;
        // Requests left from an earlier run of the same apply are void.
        let _ = std::fs::remove_dir_all(stop_requests(project_dir, apply_id));
        let _ = std::fs::remove_file(stopping(project_dir, apply_id));
        Ok(Self { file, path })
    }

    /// The apply ended: it is no longer listed.
    pub fn finish(self) {
        if let Some(project_dir) = self.path.parent().and_then(Path::parent) {
            let apply_id = self
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = std::fs::remove_dir_all(stop_requests(project_dir, &apply_id));
            let _ = std::fs::remove_file(stopping(project_dir, &apply_id));
        }
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// A workflow lock someone else holds: the holder as it wrote itself (its
/// apply id and pid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Held(pub String);

/// The right to apply one workflow: held for the whole apply, so a second
/// apply of the same workflow in the same project refuses to start instead
/// of running the same agents on the same folders at once.
#[derive(Debug)]
pub struct WorkflowLock {
    file: File,
}

impl WorkflowLock {
    /// Takes the lock, or says who holds it.
    pub fn acquire(
        project_dir: &Path,
        workflow: &str,
        apply_id: &str,
    ) -> std::io::Result<Result<Self, Held>> {
        use std::io::{Read, Seek, Write};
        let dir = project_dir.join(DIR);
        crate::private::create_dir_all(&dir)?;
        let name = format!("{}.workflow", super::ids::short_hash(workflow, 6));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join(name))?;
        if file.try_lock().is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Ok(Err(Held(holder.trim().to_string())));
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{apply_id} (pid {})", std::process::id())?;
        Ok(Ok(Self { file }))
    }

    pub fn release(self) {
        let _ = self.file.unlock();
    }
}

/// Who holds `workflow`'s lock in the project now (an apply of it is
/// starting or running), as it wrote itself; `None` when no one does.
pub fn workflow_holder(project_dir: &Path, workflow: &str) -> Option<String> {
    use std::io::Read;
    let name = format!("{}.workflow", super::ids::short_hash(workflow, 6));
    let mut file = OpenOptions::new()
        .read(true)
        .open(project_dir.join(DIR).join(name))
        .ok()?;
    if file.try_lock().is_ok() {
        let _ = file.unlock();
        return None;
    }
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    Some(holder.trim().to_string())
}

/// The ids of the project's applies whose process died while they ran.
/// Each is returned locked by this process, so that two applies starting at
/// once never both finalise it; `forget` it once it is finalised.
pub fn dead(project_dir: &Path) -> Vec<(String, File)> {
    let Ok(entries) = std::fs::read_dir(project_dir.join(DIR)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".lock")?.to_string();
            let file = OpenOptions::new().read(true).open(e.path()).ok()?;
            file.try_lock().ok()?;
            Some((id, file))
        })
        .collect()
}

/// Whether the apply `apply_id` is running now: its lock file exists and is
/// held (by its process; the kernel drops the lock when that dies).
pub fn is_running(project_dir: &Path, apply_id: &str) -> bool {
    let path = project_dir.join(DIR).join(format!("{apply_id}.lock"));
    let Ok(file) = OpenOptions::new().read(true).open(path) else {
        return false;
    };
    if file.try_lock().is_ok() {
        let _ = file.unlock();
        return false;
    }
    true
}

/// Removes a dead apply's lock file.
pub fn forget(project_dir: &Path, apply_id: &str) {
    let _ = std::fs::remove_file(project_dir.join(DIR).join(format!("{apply_id}.lock")));
}

/// The pid of the running apply `apply_id`, when it is running (its lock
/// file is held and names it).
pub fn running_pid(project_dir: &Path, apply_id: &str) -> Option<i32> {
    if !is_running(project_dir, apply_id) {
        return None;
    }
    std::fs::read_to_string(project_dir.join(DIR).join(format!("{apply_id}.lock")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn stopping(project_dir: &Path, apply_id: &str) -> PathBuf {
    project_dir.join(DIR).join(format!("{apply_id}.stopping"))
}

/// Marks the running apply `apply_id` as asked to stop; whether this was
/// the first ask (a second Ctrl-C would kill at once, so only the first
/// is sent).
pub fn mark_stopping(project_dir: &Path, apply_id: &str) -> std::io::Result<bool> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(stopping(project_dir, apply_id))
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The folder of an apply's requests to stop instances: one file each,
/// holding the instance key (docs/api.md, "Acting").
fn stop_requests(project_dir: &Path, apply_id: &str) -> PathBuf {
    project_dir.join(DIR).join(format!("{apply_id}.stop"))
}

/// Asks the running apply `apply_id` to stop instance `key`: the request
/// is written for it to take (the caller then wakes it with SIGUSR1).
pub fn request_stop(project_dir: &Path, apply_id: &str, key: &str) -> std::io::Result<()> {
    let dir = stop_requests(project_dir, apply_id);
    crate::private::create_dir_all(&dir)?;
    let name = super::ids::short_hash(key, 8);
    super::atomic::write_atomic_fast(&dir.join(name), key.as_bytes())
}

/// The instance keys the apply `apply_id` is asked to stop, each request
/// taken (removed) as it is read.
pub fn take_stop_requests(project_dir: &Path, apply_id: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(stop_requests(project_dir, apply_id)) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let key = std::fs::read_to_string(e.path()).ok()?;
            std::fs::remove_file(e.path()).ok()?;
            Some(key)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_is_applied_by_one_apply_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = WorkflowLock::acquire(dir.path(), "w", "apply-1")
            .unwrap()
            .unwrap();
        // A second open file description conflicts even within one process.
        let held = WorkflowLock::acquire(dir.path(), "w", "apply-2")
            .unwrap()
            .unwrap_err();
        assert!(held.0.starts_with("apply-1 (pid "), "{held}");
        assert!(
            WorkflowLock::acquire(dir.path(), "other", "apply-3")
                .unwrap()
                .is_ok()
        );
        first.release();
        assert!(
            WorkflowLock::acquire(dir.path(), "w", "apply-4")
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn a_live_apply_is_not_dead_and_a_released_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let live = LiveApply::register(dir.path(), "apply-1").unwrap();
        assert!(dead(dir.path()).is_empty());
        assert!(is_running(dir.path(), "apply-1"));
        assert!(!is_running(dir.path(), "apply-2"));
        // Dropping without `finish` is what a killed process leaves behind.
        drop(live);
        let found: Vec<String> = dead(dir.path()).into_iter().map(|(id, _)| id).collect();
        assert_eq!(found, ["apply-1"]);
        forget(dir.path(), "apply-1");
        assert!(dead(dir.path()).is_empty());
    }
}
