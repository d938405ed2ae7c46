//! Appending to a bus, correctly on a file system shared by several hosts
//! too (docs/bus.md, "The bus on shared file systems"): under an
//! exclusive `flock` (the call the Go seed uses, so the two lock each other
//! out), the file's size is asked of the file system itself (not a cached
//! one), the record written there with one positioned write, and, on a
//! network or FUSE file system, flushed before the lock is let go. So
//! concurrent writers never interleave or write over each other, on one
//! host or several, and a crashed writer never blocks the next one (the
//! kernel drops its lock). An `O_APPEND` write is not used: on a network
//! file system the kernel takes the end of file from its cached size.

use std::fs::{File, OpenOptions};
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
    /// On a file system other hosts may write too: each record is
    /// flushed before the lock is let go.
    shared: bool,
}

/// The `statfs` magic numbers of file systems other hosts may write to
/// (linux/magic.h, and the file systems' own headers).
const SHARED_FILE_SYSTEMS: [i64; 12] = [
    0x6969,      // NFS
    0xFF53_4D42, // CIFS
    0xFE53_4D42, // SMB2
    0x6573_5546, // FUSE (JuiceFS, s3fs, GlusterFS, CephFS-fuse...)
    0x0BD0_0BD0, // Lustre
    0x4750_4653, // GPFS (IBM Storage Scale)
    0x00C3_6400, // CephFS
    0x0102_1997, // 9P
    0x5346_414F, // AFS
    0x7461_636F, // OCFS2
    0x0116_1970, // GFS2
    0x1983_0326, // BeeGFS
];

/// Whether `file` is on a file system that other hosts may write to.
fn on_shared_file_system(file: &File) -> bool {
    rustix::fs::fstatfs(file).is_ok_and(|fs| {
        #[expect(
            clippy::useless_conversion,
            clippy::unnecessary_cast,
            reason = "f_type's width differs between targets"
        )]
        let kind = i64::from(fs.f_type as i64);
        SHARED_FILE_SYSTEMS.contains(&(kind & 0xFFFF_FFFF))
    })
}

/// The file's size as the file system has it now: asked past any cache
/// (`AT_STATX_FORCE_SYNC`), which matters when other hosts append to it.
fn size_now(file: &File) -> std::io::Result<u64> {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    match statx(
        file,
        "",
        AtFlags::EMPTY_PATH | AtFlags::STATX_FORCE_SYNC,
        StatxFlags::SIZE,
    ) {
        Ok(st) => Ok(st.stx_size),
        // A kernel without statx: the size fstat gives.
        Err(_) => Ok(file.metadata()?.len()),
    }
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
        // Not `O_APPEND`: each record is written at the size asked for
        // under the lock (see the module's comment).
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .truncate(false)
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
        let shared = on_shared_file_system(&file);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            ids: IdGenerator::new(),
            buf: String::new(),
            has_content: false,
            shared,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `buf` at `at` (the end), or nothing: a write that fails
    /// part-way (a full disk, a file-size limit) is cut back off, so the
    /// bus never keeps half a record. The caller holds the lock, so the
    /// bytes from `at` on are this write's alone.
    fn write_whole(&mut self, buf: &[u8], at: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if let Err(e) = self.file.write_all_at(buf, at) {
            if let Err(cut) = self.file.set_len(at) {
                tracing::warn!(
                    "cannot cut a half-written record off {}: {cut}",
                    self.path.display()
                );
            }
            return Err(e);
        }
        if self.shared {
            // Before the lock goes: the next host to take it reads a size
            // that holds this record.
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Writes `record` (which starts with the separator newline) under the
    /// lock; records are separated by a blank line, as the seed writes them.
    fn write_locked(&mut self, record: &str) -> std::io::Result<()> {
        self.file.lock()?;
        let result = (|| {
            let len = size_now(&self.file)?;
            self.has_content |= len > 0;
            let bytes = record.as_bytes();
            if !self.has_content {
                return self.write_whole(&bytes[1..], len);
            }
            // A writer that died mid-write left no newline at the end: one
            // more puts this record's blank line and fence on lines of their
            // own, so readers see where the torn one ends.
            let mut last = [0u8; 1];
            std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut last, len - 1)?;
            if last[0] == b'\n' {
                self.write_whole(bytes, len)
            } else {
                let mut mended = Vec::with_capacity(bytes.len() + 1);
                mended.push(b'\n');
                mended.extend_from_slice(bytes);
                self.write_whole(&mended, len)
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
