//! Owns stall detection: N iterations in a row that changed neither the
//! workdir nor the answer fail the node. The workdir's state is the hash of
//! every file's path, size and modification time, of the files that
//! `crate::walk` counts.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

/// Counts iterations that changed nothing.
#[derive(Debug)]
pub(super) struct Stall {
    limit: u32,
    workdir: PathBuf,
    runs_root: PathBuf,
    last: (u64, u64),
    quiet: u32,
}

impl Stall {
    pub(super) fn new(limit: u32, workdir: PathBuf, runs_root: PathBuf) -> Self {
        let mut s = Self {
            limit,
            workdir,
            runs_root,
            last: (0, 0),
            quiet: 0,
        };
        s.last = (s.workdir_state(), hash_text(""));
        s
    }

    /// Records one iteration's answer; true once the limit is reached.
    pub(super) fn observe(&mut self, answer: &str) -> bool {
        let now = (self.workdir_state(), hash_text(answer));
        if now == self.last {
            self.quiet += 1;
        } else {
            self.quiet = 0;
        }
        self.last = now;
        self.quiet >= self.limit
    }

    fn workdir_state(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let mut entries: Vec<(PathBuf, u64, i128)> =
            crate::walk::entries(&self.workdir, Some(&self.runs_root))
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    let mtime = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0));
                    Some((e.into_path(), m.len(), mtime))
                })
                .collect();
        entries.sort();
        entries.hash(&mut h);
        h.finish()
    }
}

fn hash_text(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}
