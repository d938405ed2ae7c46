//! Owns which files a watch reacts to and how their events are gathered
//! (docs/watch.md). The workflow file, its sub-workflows and the templates
//! it loaded are its *definition*; the files a node's `inputs` match are
//! *inputs*; nothing else counts, the runs root least of all.
//! Folders are watched one by one (no recursive inotify over `.git`,
//! `target` or the runs root; `.gitignore` is respected), and a new folder
//! is watched as soon as its creation is seen, since inotify misses files
//! made in a folder before it is watched. Events are debounced: a burst
//! ends after 30 ms of quiet, or 50 ms after its first event.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

/// A burst ends after this much quiet..
const QUIET: Duration = Duration::from_millis(30);
/// ..or this long after its first event, whichever comes first.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// What one file event means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Input,
    Definition,
}

/// The files that count, from the last plan that compiled.
#[derive(Debug, Default)]
pub(crate) struct WatchSet {
    definition: HashSet<PathBuf>,
    /// Each workdir with inputs, and the globs its inputs match.
    inputs: Vec<(PathBuf, GlobSet)>,
    /// Folders to watch (not recursively).
    folders: BTreeSet<PathBuf>,
    runs_root: PathBuf,
}

impl WatchSet {
    /// `definition`: the workflow's own files; `inputs`: each workdir with
    /// its instances' `inputs` patterns.
    pub(crate) fn new(
        definition: impl IntoIterator<Item = PathBuf>,
        inputs: &[(PathBuf, Vec<String>)],
        runs_root: &Path,
    ) -> Self {
        let mut set = Self {
            runs_root: runs_root.to_path_buf(),
            ..Self::default()
        };
        for file in definition {
            if let Some(dir) = file.parent() {
                set.folders.insert(dir.to_path_buf());
            }
            set.definition.insert(file);
        }
        let mut by_dir: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for (dir, patterns) in inputs {
            by_dir
                .entry(dir.clone())
                .or_default()
                .extend(patterns.iter().cloned());
        }
        for (dir, mut patterns) in by_dir {
            patterns.sort();
            patterns.dedup();
            let mut globs = GlobSetBuilder::new();
            // Walked once each: a fan-out's instances often share a folder
            // (10,000 `inputs/x.txt` patterns are one walk of `inputs`).
            let mut under = BTreeSet::new();
            for p in &patterns {
                let p = p.trim_start_matches("./");
                let glob = if dir.join(p).is_dir() {
                    format!("{}/**", p.trim_end_matches('/'))
                } else {
                    p.to_string()
                };
                if let Ok(g) = GlobBuilder::new(&glob).literal_separator(true).build() {
                    globs.add(g);
                }
                under.insert(literal_folder(&glob));
            }
            for folder in &under {
                set.add_folders(&dir, folder);
            }
            if let Ok(globs) = globs.build() {
                set.inputs.push((dir, globs));
            }
        }
        set
    }

    /// `base/under` and the folders below it that `.gitignore` keeps.
    fn add_folders(&mut self, base: &Path, under: &str) {
        let top = base.join(under);
        let top = if top.is_dir() {
            top
        } else {
            base.to_path_buf()
        };
        for entry in crate::walk::entries(&top, Some(&self.runs_root)) {
            if entry.file_type().is_some_and(|t| t.is_dir()) {
                self.folders.insert(entry.into_path());
            }
        }
    }

    /// What an event on `path` means, if anything.
    pub(crate) fn classify(&self, path: &Path) -> Option<Kind> {
        if path.starts_with(&self.runs_root) {
            return None;
        }
        if self.definition.contains(path) {
            return Some(Kind::Definition);
        }
        for (dir, globs) in &self.inputs {
            if let Ok(rel) = path.strip_prefix(dir)
                && (globs.is_match(rel) || (path.is_dir() && globs.is_match(rel.join("x"))))
            {
                return Some(Kind::Input);
            }
        }
        None
    }

    /// The folders to watch.
    pub(crate) fn folders(&self) -> &BTreeSet<PathBuf> {
        &self.folders
    }
}

/// The folders a glob names before its first wildcard.
fn literal_folder(glob: &str) -> String {
    let parts: Vec<&str> = glob.split('/').collect();
    let mut out = Vec::new();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if part.contains(['*', '?', '[', '{']) {
            break;
        }
        out.push(*part);
    }
    out.join("/")
}

/// A debounced burst of events that count.
#[derive(Debug, Default)]
pub(crate) struct Burst {
    /// The files, each with what it is, in path order.
    pub files: Vec<(PathBuf, Kind)>,
}

impl Burst {
    /// Whether anything but inputs changed.
    pub(crate) fn has_definition(&self) -> bool {
        self.files.iter().any(|(_, k)| *k == Kind::Definition)
    }

    /// `flow.toml changed`, `src/a.rs and 2 more changed`, relative to `base`.
    pub(crate) fn describe(&self, base: &Path) -> String {
        let name = |p: &Path| p.strip_prefix(base).unwrap_or(p).display().to_string();
        let names: Vec<String> = self.files.iter().map(|(p, _)| name(p)).collect();
        match names.len() {
            0 => "nothing changed".into(),
            1..=3 => format!("{} changed", names.join(", ")),
            n => format!("{} and {} more changed", names[..3].join(", "), n - 3),
        }
    }
}

/// File events on the watched folders.
#[derive(Debug)]
pub(crate) struct Watcher {
    inotify: RecommendedWatcher,
    events: Receiver<notify::Result<notify::Event>>,
    watched: BTreeSet<PathBuf>,
}

impl Watcher {
    pub(crate) fn new() -> notify::Result<Self> {
        let (tx, events) = std::sync::mpsc::channel();
        let watcher = notify::recommended_watcher(move |e| {
            let _ = tx.send(e);
        })?;
        Ok(Self {
            inotify: watcher,
            events,
            watched: BTreeSet::new(),
        })
    }

    /// Watches exactly the folders `set` names (from now on).
    pub(crate) fn follow(&mut self, set: &WatchSet) {
        let wanted = set.folders().clone();
        for gone in self.watched.difference(&wanted) {
            let _ = self.inotify.unwatch(gone);
        }
        for new in wanted.difference(&self.watched) {
            if let Err(e) = self.inotify.watch(new, RecursiveMode::NonRecursive) {
                tracing::debug!("cannot watch {}: {e}", new.display());
            }
        }
        self.watched = wanted;
    }

    /// Waits for the next burst of events that count (or for `stop`).
    pub(crate) fn next_burst(&mut self, set: &WatchSet, stop: &dyn Fn() -> bool) -> Option<Burst> {
        let mut seen: BTreeSet<(PathBuf, Kind)> = BTreeSet::new();
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        loop {
            if stop() {
                return None;
            }
            let wait = match first {
                None => Duration::from_millis(200),
                Some(f) => QUIET
                    .saturating_sub(last.elapsed())
                    .min(MAX_WAIT.saturating_sub(f.elapsed())),
            };
            match self.events.recv_timeout(wait) {
                Ok(Ok(event)) => {
                    // Reads (conductor's own hashing among them) and
                    // metadata changes are not changes.
                    if matches!(
                        event.kind,
                        notify::EventKind::Access(_)
                            | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                    ) {
                        continue;
                    }
                    for path in event.paths {
                        if path.is_dir()
                            && !path.starts_with(&set.runs_root)
                            && self.watched.insert(path.clone())
                        {
                            // A new folder: watch it, and look at what
                            // landed in it before it was watched.
                            let _ = self.inotify.watch(&path, RecursiveMode::NonRecursive);
                            let files = crate::walk::files(&path, Some(&set.runs_root))
                                .map(ignore::DirEntry::into_path);
                            for found in files {
                                if let Some(kind) = set.classify(&found) {
                                    seen.insert((found, kind));
                                    first.get_or_insert_with(Instant::now);
                                }
                            }
                        }
                        if let Some(kind) = set.classify(&path) {
                            seen.insert((path, kind));
                            first.get_or_insert_with(Instant::now);
                            last = Instant::now();
                        }
                    }
                }
                Ok(Err(e)) => tracing::debug!("watch error: {e}"),
                Err(RecvTimeoutError::Timeout) => {
                    if first.is_some() {
                        return Some(Burst {
                            files: seen.into_iter().collect(),
                        });
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_inputs_and_the_runs_root_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("src/deep")).unwrap();
        std::fs::create_dir_all(base.join("runs/p")).unwrap();
        std::fs::write(base.join("flow.toml"), "").unwrap();
        let set = WatchSet::new(
            [base.join("flow.toml")],
            &[(
                base.to_path_buf(),
                vec!["src/**/*.rs".into(), "a.txt".into()],
            )],
            &base.join("runs"),
        );
        assert_eq!(
            set.classify(&base.join("flow.toml")),
            Some(Kind::Definition)
        );
        assert_eq!(set.classify(&base.join("src/deep/x.rs")), Some(Kind::Input));
        assert_eq!(set.classify(&base.join("a.txt")), Some(Kind::Input));
        assert_eq!(set.classify(&base.join("src/deep/x.txt")), None);
        assert_eq!(set.classify(&base.join("runs/p/a.txt")), None);
        assert!(set.folders().contains(&base.join("src/deep")));
        assert!(!set.folders().contains(&base.join("runs/p")));
    }
}
