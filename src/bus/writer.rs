//! Appending to a bus: one `write` with `O_APPEND`, under an exclusive
//! `flock` (the call the Go seed uses, so the two lock each other out), so
//! that concurrent writers never interleave and a crashed writer never
//! blocks the next one (the kernel drops its lock).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::id::{IdGenerator, format_ts};
use super::record::NewMessage;

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("cannot write the bus {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot write the bus {}: {source}\n  help: the disk is full or a file-size limit (`ulimit -f`) is reached; nothing was written: free some space or raise the limit, then try again",
        path.display()
    )]
    Full {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a regular file; a bus must be one", path.display())]
    NotAFile { path: PathBuf },
    #[error("a message needs a {0}")]
    Missing(&'static str),
}

/// An open bus file that messages are appended to.
#[derive(Debug)]
pub struct BusWriter {
    path: PathBuf,
    file: File,
    ids: IdGenerator,
    /// The last record's text, kept for its allocation.
    buf: String,
    /// Once the file has content it keeps it (it is only appended to), so
    /// the size need not be asked for again.
    has_content: bool,
}

impl BusWriter {
    /// Opens (creating it and its folders) the bus at `path`. A symlink or
    /// other non-regular file is refused, as the seed does.
    pub fn open(path: &Path) -> Result<Self, AppendError> {
        let io = |source| AppendError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && !meta.file_type().is_file()
        {
            return Err(AppendError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let open = || {
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(path)
        };
        // Missing folders are created only when the open says so: most
        // appends go to a bus whose folder exists.
        let file = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    crate::private::create_dir_all(dir).map_err(io)?;
                }
                open()
            }
            other => other,
        }
        .map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            ids: IdGenerator::new(),
            buf: String::new(),
            has_content: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `buf` at the end, or nothing: a write that fails part-way (a
    /// full disk, a file-size limit) is cut back off, so the bus never
    /// keeps half a record. The caller holds the lock, so the bytes after
    /// the length the file had before are this write's alone.
    fn write_whole(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let mut written = 0;
        while written < buf.len() {
            match self.file.write(&buf[written..]) {
                Ok(0) => {
                    return Err(self.undo(written, std::io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.undo(written, e)),
            }
        }
        Ok(())
    }

    fn undo(&mut self, written: usize, error: std::io::Error) -> std::io::Error {
        if written > 0
            && let Ok(meta) = self.file.metadata()
        {
            let keep = meta.len().saturating_sub(written as u64);
            if let Err(e) = self.file.set_len(keep) {
                tracing::warn!(
                    "cannot cut a half-written record off {}: {e}",
                    self.path.display()
                );
            }
        }
        error
    }

    /// Writes `record` (which starts with the separator newline) under the
    /// lock; records are separated by a blank line, as the seed writes them.
    fn write_locked(&mut self, record: &str) -> std::io::Result<()> {
        self.file.lock()?;
        let result = (|| {
            let len = self.file.metadata()?.len();
            self.has_content |= len > 0;
            let bytes = record.as_bytes();
            if !self.has_content {
                return self.write_whole(&bytes[1..]);
            }
            // A writer that died mid-write left no newline at the end: one
            // more puts this record's blank line and fence on lines of their
            // own, so readers see where the torn one ends.
            let mut last = [0u8; 1];
            std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut last, len - 1)?;
            if last[0] == b'\n' {
                self.write_whole(bytes)
            } else {
                let mut mended = Vec::with_capacity(bytes.len() + 1);
                mended.push(b'\n');
                mended.extend_from_slice(bytes);
                self.write_whole(&mended)
            }
        })();
        let unlocked = self.file.unlock();
        if result.is_ok() {
            self.has_content = true;
        }
        result.and(unlocked)
    }

    /// Appends `msg`, stamped now; returns its id.
    pub fn append(&mut self, msg: &NewMessage) -> Result<String, AppendError> {
        self.append_at(msg, crate::clock::now())
    }

    /// Appends `msg` stamped `now`.
    pub fn append_at(&mut self, msg: &NewMessage, now: Timestamp) -> Result<String, AppendError> {
        if msg.kind.trim().is_empty() {
            return Err(AppendError::Missing("type"));
        }
        if msg.project_id.trim().is_empty() {
            return Err(AppendError::Missing("project id"));
        }
        let id = self.ids.next(now);
        // Rendered before the lock is taken, after a separator byte that is
        // written only if the file has content already.
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.push('\n');
        msg.render_into(&mut buf, &id, &format_ts(now));
        let result = self.write_locked(&buf);
        // One huge body must not stay in memory for the writer's lifetime.
        if buf.capacity() <= 64 * 1024 {
            self.buf = buf;
        }
        result.map_err(|source| {
            if matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::FileTooLarge
            ) {
                AppendError::Full {
                    path: self.path.clone(),
                    source,
                }
            } else {
                AppendError::Io {
                    path: self.path.clone(),
                    source,
                }
            }
        })?;
        Ok(id)
    }
}
