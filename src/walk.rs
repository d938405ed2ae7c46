//! Owns which files of a tree count, for everything that looks at a
//! project's files: `for_each` globs, the `inputs` that fingerprints hash,
//! stall detection and the watcher's folders. One rule set, so that they
//! all agree:
//!
//! - hidden files count (`.env.example` is as much an input as `main.rs`);
//! - `.gitignore`, `.ignore` and git's excludes are honoured whether or not
//!   the tree is inside a git repository;
//! - `.git`, conductor's own `.conductor` folders and the runs root are
//!   never entered (docs/run-store.md).

use std::path::{Path, PathBuf};

use crate::store::layout::CONDUCTOR_DIR;

/// Every entry under `root` that counts, folders included, `root` first.
pub(crate) fn entries(
    root: &Path,
    runs_root: Option<&Path>,
) -> impl Iterator<Item = ignore::DirEntry> {
    let runs_root: Option<PathBuf> = runs_root.map(Path::to_path_buf);
    ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .filter_entry(move |e| {
            !matches!(e.file_name().to_str(), Some(".git" | CONDUCTOR_DIR))
                && runs_root
                    .as_deref()
                    .is_none_or(|r| !e.path().starts_with(r))
        })
        .build()
        .filter_map(Result::ok)
}

/// Every file under `root` that counts.
pub(crate) fn files(
    root: &Path,
    runs_root: Option<&Path>,
) -> impl Iterator<Item = ignore::DirEntry> {
    entries(root, runs_root).filter(|e| e.file_type().is_some_and(|t| t.is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(root: &Path, runs: Option<&Path>) -> Vec<String> {
        let mut out: Vec<String> = files(root, runs)
            .map(|e| {
                e.path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn hidden_files_count_ignored_ones_and_conductors_own_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            (".gitignore", "target/\n*.log\n"),
            (".env.example", "A=1"),
            ("src/main.rs", ""),
            ("target/out", ""),
            ("run.log", ""),
            (".git/config", ""),
            (".conductor/.gitignore", "*"),
            ("sub/.conductor/x", ""),
            ("runs/p/t/DONE", ""),
        ] {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        // Not a git repository: .gitignore is honoured all the same.
        assert_eq!(
            names(root, Some(&root.join("runs"))),
            [".env.example", ".gitignore", "src/main.rs"]
        );
        assert_eq!(
            names(root, None),
            [".env.example", ".gitignore", "runs/p/t/DONE", "src/main.rs"]
        );
    }
}
