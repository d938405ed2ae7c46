//! Owns a count shared by the hosts of a cluster through one file on their
//! shared file system: taken under an exclusive `flock` (which NFS and the
//! other shared file systems of docs/bus.md pass on to their server), read,
//! raised and flushed before the lock goes, so that no two hosts take the
//! same one. It keeps `[limits] max_agents` across the Slurm jobs of an
//! apply (docs/distributed.md, "Budgets").

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

/// Takes one of `max` from the count in `path` (0 when the file is
/// missing); whether one was left.
pub(crate) fn take(path: &Path, max: u32) -> std::io::Result<bool> {
    let mut file = std::fs::OpenOptions::new()
        .mode(0o600)
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    flock(&file, FlockOperation::LockExclusive)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let taken: u32 = text.trim().parse().unwrap_or(0);
    if taken >= max {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(0))?;
    file.set_len(0)?;
    file.write_all(format!("{}\n", taken + 1).as_bytes())?;
    file.sync_data()?;
    // The lock goes with the file.
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_taking_at_once_take_no_more_than_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("count");
        let taken: u32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..10).filter(|_| take(&path, 25).unwrap()).count()))
                .collect();
            handles
                .into_iter()
                .map(|h| u32::try_from(h.join().unwrap()).unwrap())
                .sum()
        });
        assert_eq!(taken, 25);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "25\n");
    }
}
