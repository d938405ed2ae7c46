//! Whole-file writes that are atomic: a temporary file in the same folder,
//! written, fsynced and renamed over the target, so a reader sees the old
//! file or the new one, never half of one, even after a crash.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, true)
}

/// Replaces `path` with `bytes` atomically, without waiting for the disk:
/// for records that a later durable write supersedes (a run's `running`
/// record is followed by its terminal one), where an fsync would cost more
/// than the per-iteration budget (docs/performance.md).
pub fn write_atomic_fast(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace(path, bytes, false)
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    match replace_once(path, bytes, durable) {
        // A full disk: the old version's blocks make room for the new one
        // (a run's terminal record replacing its `running` one must land,
        // or the run would stay marked running).
        Err(e) if e.kind() == std::io::ErrorKind::StorageFull && path.is_file() => {
            std::fs::remove_file(path)?;
            replace_once(path, bytes, durable)
        }
        other => other,
    }
}

fn replace_once(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-info.yaml");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
