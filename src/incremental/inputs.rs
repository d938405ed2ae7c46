//! Owns hashing a node's `inputs` (docs/watch.md): the files its globs match
//! under its workdir, as `crate::walk` counts them (`.gitignore` respected,
//! the runs root never included). Each workdir is walked at most once and each file read at most
//! once per hasher, and literal paths need no walk, so ten thousand
//! instances with one input file each cost ten thousand reads, not a walk
//! per instance.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Hashes of the files an instance's `inputs` match: relative path to hash.
pub(crate) type InputHashes = BTreeMap<String, String>;

/// Caches walks and file hashes across the instances of one plan.
#[derive(Debug, Default)]
pub(crate) struct InputHasher {
    /// Never an input: the runs root.
    runs_root: Option<PathBuf>,
    /// Every file under a workdir (relative, `/`-separated, sorted).
    trees: HashMap<PathBuf, Arc<Vec<String>>>,
    /// Content hash by absolute path (`None`: unreadable).
    files: HashMap<PathBuf, Option<String>>,
    /// Results by (workdir, patterns): fan-outs often share their globs.
    sets: HashMap<(PathBuf, Vec<String>), Arc<InputHashes>>,
    /// Each glob compiled once (`None`: not a valid glob).
    matchers: HashMap<String, Option<globset::GlobMatcher>>,
}

impl InputHasher {
    pub(crate) fn new(runs_root: PathBuf) -> Self {
        Self {
            runs_root: Some(runs_root),
            ..Self::default()
        }
    }

    /// Forgets what is known about `paths`, the files a watch saw change.
    /// Whether every one was an edit: a file read before that is a file
    /// still. Then what was walked still holds and only the results built
    /// on those files' folders are dropped; a new or deleted file changes
    /// the walks, and everything walked is forgotten.
    pub(crate) fn forget_edits(&mut self, paths: &[PathBuf]) -> bool {
        // An ignore file changes what every walk finds.
        let ignores = |p: &PathBuf| {
            p.file_name()
                .is_some_and(|n| n == ".gitignore" || n == ".ignore")
        };
        let edits = paths
            .iter()
            .all(|p| matches!(self.files.get(p), Some(Some(_))) && p.is_file() && !ignores(p));
        for p in paths {
            self.files.remove(p);
        }
        if edits {
            self.sets.retain(|(workdir, patterns), _| {
                !paths.iter().any(|p| p.starts_with(workdir)) && !patterns.iter().any(|p| leaves(p))
            });
        } else {
            self.trees.clear();
            self.sets.clear();
        }
        edits
    }

    /// Whether `patterns` under `workdir` match `path`, a file that was
    /// matched or not before and still exists (a change of its content can
    /// only change the hashes of the patterns that match it). `None` when
    /// that cannot be told without walking: a pattern that leaves its
    /// workdir, or a path that is not UTF-8.
    pub(crate) fn touches(
        &mut self,
        workdir: &Path,
        patterns: &[String],
        path: &Path,
    ) -> Option<bool> {
        if patterns.iter().any(|p| leaves(p)) {
            return None;
        }
        let Ok(rel) = path.strip_prefix(workdir) else {
            return Some(false);
        };
        if self.excluded(path) {
            return Some(false);
        }
        let rel_text = rel.to_str()?;
        for pattern in patterns {
            let pattern = pattern.trim_start_matches("./");
            let hit = if is_glob(pattern) {
                self.matcher(pattern).is_some_and(|m| m.is_match(rel_text))
            } else {
                // A literal file, or a folder and everything under it.
                rel.starts_with(pattern)
            };
            if hit {
                return Some(true);
            }
        }
        Some(false)
    }

    fn matcher(&mut self, pattern: &str) -> Option<&globset::GlobMatcher> {
        self.matchers
            .entry(pattern.to_string())
            .or_insert_with(|| {
                globset::GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| tracing::warn!("input glob `{pattern}`: {e}"))
                    .ok()
                    .map(|g| g.compile_matcher())
            })
            .as_ref()
    }

    /// The hashes of every file `patterns` match under `workdir`.
    pub(crate) fn hash(&mut self, workdir: &Path, patterns: &[String]) -> Arc<InputHashes> {
        let key = (workdir.to_path_buf(), patterns.to_vec());
        if let Some(found) = self.sets.get(&key) {
            return Arc::clone(found);
        }
        let mut out = InputHashes::new();
        for pattern in patterns {
            let pattern = pattern.trim_start_matches("./");
            if is_glob(pattern) {
                self.add_glob(workdir, pattern, &mut out);
            } else {
                let path = workdir.join(pattern);
                if path.is_dir() {
                    self.add_glob(
                        workdir,
                        &format!("{}/**", pattern.trim_end_matches('/')),
                        &mut out,
                    );
                } else if path.exists() && !self.excluded(&path) {
                    let hash = self.file_hash(&path);
                    out.insert(pattern.to_string(), hash);
                }
            }
        }
        let out = Arc::new(out);
        self.sets.insert(key, Arc::clone(&out));
        out
    }

    fn add_glob(&mut self, workdir: &Path, pattern: &str, out: &mut InputHashes) {
        let Some(matcher) = self.matcher(pattern).cloned() else {
            return;
        };
        let tree = self.tree(workdir);
        // Only the files under the glob's literal leading folders can match.
        let prefix = literal_prefix(pattern);
        let start = tree.partition_point(|p| p.as_str() < prefix.as_str());
        let hits: Vec<String> = tree[start..]
            .iter()
            .take_while(|p| p.starts_with(&prefix))
            .filter(|p| matcher.is_match(p.as_str()))
            .cloned()
            .collect();
        for rel in hits {
            let hash = self.file_hash(&workdir.join(&rel));
            out.insert(rel, hash);
        }
    }

    fn tree(&mut self, workdir: &Path) -> Arc<Vec<String>> {
        if let Some(t) = self.trees.get(workdir) {
            return Arc::clone(t);
        }
        let mut files: Vec<String> = crate::walk::files(workdir, self.runs_root.as_deref())
            .filter_map(|e| {
                e.path()
                    .strip_prefix(workdir)
                    .ok()
                    .map(|r| r.to_string_lossy().replace('\\', "/"))
            })
            .collect();
        files.sort();
        let files = Arc::new(files);
        self.trees.insert(workdir.to_path_buf(), Arc::clone(&files));
        files
    }

    fn excluded(&self, path: &Path) -> bool {
        self.runs_root.as_ref().is_some_and(|r| path.starts_with(r))
    }

    fn file_hash(&mut self, path: &Path) -> String {
        if let Some(h) = self.files.get(path) {
            return h.clone().unwrap_or_else(|| "unreadable".into());
        }
        let hash = content_hash(path);
        self.files.insert(path.to_path_buf(), hash.clone());
        hash.unwrap_or_else(|| "unreadable".into())
    }
}

/// The first 8 bytes of the SHA-256 of a file's content, in hex.
fn content_hash(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    // Through io::copy's stack buffer: a fresh 64 KiB heap buffer per file
    // cost a zeroing and a malloc consolidation on every one of them.
    std::io::copy(&mut file, &mut hasher).ok()?;
    Some(super::digest::hex(&hasher.finalize()[..8]))
}

/// Whether a pattern names files outside its workdir (`..`, an absolute path).
fn leaves(pattern: &str) -> bool {
    Path::new(pattern.trim_start_matches("./"))
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// The folders a glob names literally before its first wildcard, with a
/// trailing `/` (empty when the first part is already a wildcard).
fn literal_prefix(pattern: &str) -> String {
    let mut prefix = String::new();
    let parts: Vec<&str> = pattern.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if is_glob(part) {
            break;
        }
        prefix.push_str(part);
        prefix.push('/');
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn globs_match_below_their_literal_folders_and_respect_gitignore() {
        let dir = tree(&[
            ("src/a.rs", "a"),
            ("src/deep/b.rs", "b"),
            ("src/c.txt", "c"),
            ("other/d.rs", "d"),
            ("target/e.rs", "e"),
            (".gitignore", "target/\n"),
        ]);
        let mut h = InputHasher::default();
        let got = h.hash(dir.path(), &["src/**/*.rs".into(), "target/*.rs".into()]);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["src/a.rs", "src/deep/b.rs"]
        );
        let one = h.hash(dir.path(), &["src/*.rs".into()]);
        assert_eq!(one.keys().collect::<Vec<_>>(), ["src/a.rs"]);
    }

    #[test]
    fn a_literal_folder_means_everything_under_it_and_content_changes_the_hash() {
        let dir = tree(&[("docs/x.md", "one"), ("docs/y/z.md", "two")]);
        let mut h = InputHasher::default();
        let before = h.hash(dir.path(), &["docs".into()]);
        assert_eq!(before.len(), 2);
        std::fs::write(dir.path().join("docs/x.md"), "changed").unwrap();
        assert!(h.forget_edits(&[dir.path().join("docs/x.md")]));
        let after = h.hash(dir.path(), &["docs".into()]);
        assert_ne!(before["docs/x.md"], after["docs/x.md"]);
        assert_eq!(before["docs/y/z.md"], after["docs/y/z.md"]);
    }

    #[test]
    fn an_edit_keeps_the_walks_and_a_new_or_deleted_file_does_not() {
        let dir = tree(&[("src/a.rs", "a"), ("src/b.rs", "b")]);
        let a = dir.path().join("src/a.rs");
        let mut h = InputHasher::default();
        let before = h.hash(dir.path(), &["src/*.rs".into()]);
        std::fs::write(&a, "edited").unwrap();
        assert!(h.forget_edits(std::slice::from_ref(&a)), "an edit");
        let after = h.hash(dir.path(), &["src/*.rs".into()]);
        assert_ne!(before["src/a.rs"], after["src/a.rs"]);
        assert_eq!(before["src/b.rs"], after["src/b.rs"]);
        // A file no hash was taken of is new to the hasher.
        let c = dir.path().join("src/c.rs");
        std::fs::write(&c, "c").unwrap();
        assert!(!h.forget_edits(std::slice::from_ref(&c)), "a new file");
        assert_eq!(h.hash(dir.path(), &["src/*.rs".into()]).len(), 3);
        std::fs::remove_file(&a).unwrap();
        assert!(!h.forget_edits(&[a]), "a deleted file");
        assert_eq!(h.hash(dir.path(), &["src/*.rs".into()]).len(), 2);
        // An ignore file changes the walks, even when it is an input.
        let ignore = dir.path().join(".gitignore");
        std::fs::write(&ignore, "").unwrap();
        assert!(!h.forget_edits(std::slice::from_ref(&ignore)), "a new file");
        assert_eq!(h.hash(dir.path(), &["**".into()]).len(), 3);
        std::fs::write(&ignore, "src/c.rs\n").unwrap();
        assert!(!h.forget_edits(std::slice::from_ref(&ignore)));
        let walked = h.hash(dir.path(), &["**".into()]);
        assert_eq!(
            walked.keys().collect::<Vec<_>>(),
            [".gitignore", "src/b.rs"]
        );
    }

    #[test]
    fn what_an_edited_file_touches_is_told_by_the_patterns_alone() {
        let dir = tree(&[("src/deep/a.rs", "a"), ("docs/x.md", "x"), ("b.txt", "b")]);
        let base = dir.path();
        let mut h = InputHasher::new(base.join("runs"));
        let mut touches = |patterns: &[&str], path: &str| {
            let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_string()).collect();
            h.touches(base, &patterns, &base.join(path))
        };
        assert_eq!(touches(&["src/**/*.rs"], "src/deep/a.rs"), Some(true));
        assert_eq!(touches(&["src/*.rs"], "src/deep/a.rs"), Some(false));
        assert_eq!(touches(&["./b.txt"], "b.txt"), Some(true));
        assert_eq!(touches(&["docs"], "docs/x.md"), Some(true), "a folder");
        assert_eq!(touches(&["b.txt"], "docs/x.md"), Some(false));
        assert_eq!(
            touches(&["**"], "runs/p/t.txt"),
            Some(false),
            "the runs root"
        );
        assert_eq!(touches(&["../b.txt"], "b.txt"), None, "leaves its workdir");
        assert_eq!(touches(&["/etc/x"], "b.txt"), None, "an absolute path");
        let other = tempfile::tempdir().unwrap();
        assert_eq!(
            h.touches(base, &["**".into()], &other.path().join("b.txt")),
            Some(false),
            "outside the workdir"
        );
    }

    #[test]
    fn the_runs_root_is_never_an_input() {
        let dir = tree(&[("a.txt", "a"), ("runs/p/t/x.txt", "x")]);
        let mut h = InputHasher::new(dir.path().join("runs"));
        let got = h.hash(dir.path(), &["**".into()]);
        assert_eq!(got.keys().collect::<Vec<_>>(), ["a.txt"]);
    }
}
