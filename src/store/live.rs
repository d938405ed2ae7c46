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
        std::fs::create_dir_all(&dir)?;
        let tmp = tempfile::Builder::new().prefix(".new-").tempfile_in(&dir)?;
        tmp.as_file().lock()?;
        let path = dir.join(format!("{apply_id}.lock"));
        let file = tmp.persist(&path).map_err(|e| e.error)?;
        Ok(Self { file, path })
    }

    /// The apply ended: it is no longer listed.
    pub fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
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

/// Removes a dead apply's lock file.
pub fn forget(project_dir: &Path, apply_id: &str) {
    let _ = std::fs::remove_file(project_dir.join(DIR).join(format!("{apply_id}.lock")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_apply_is_not_dead_and_a_released_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let live = LiveApply::register(dir.path(), "apply-1").unwrap();
        assert!(dead(dir.path()).is_empty());
        // Dropping without `finish` is what a killed process leaves behind.
        drop(live);
        let found: Vec<String> = dead(dir.path()).into_iter().map(|(id, _)| id).collect();
        assert_eq!(found, ["apply-1"]);
        forget(dir.path(), "apply-1");
        assert!(dead(dir.path()).is_empty());
    }
}
