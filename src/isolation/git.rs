//! Owns running git for conductor, the way an unattended program must: no
//! editor, pager or credential prompt to wait on, none of the repository's
//! hooks or signing settings in conductor's own commands, and a fixed
//! identity for the commits conductor makes for its agents
//! (docs/isolation.md, "Git").

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The identity of the commits conductor makes.
const IDENTITY: &str = "conductor";
const EMAIL: &str = "conductor@localhost";

/// Variables an outer git (a hook, an alias) may have set that would
/// point conductor's commands at another repository or index.
const INHERITED: [&str; 6] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_NAMESPACE",
];

/// A git command that could not run or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GitError {
    #[error("git is not installed (or not on PATH)")]
    Missing,
    #[error("cannot run git in {}: {source}", dir.display())]
    Spawn {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("`git {args}` in {} failed: {stderr}", dir.display())]
    Failed {
        args: String,
        dir: PathBuf,
        stderr: String,
    },
}

/// Git in one folder (`git -C dir`).
#[derive(Debug, Clone)]
pub(crate) struct Git {
    dir: PathBuf,
    /// A worktree's own git folder, named rather than read from the
    /// worktree's `.git` file, which an agent could rewrite.
    git_dir: Option<PathBuf>,
}

impl Git {
    pub(crate) fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            git_dir: None,
        }
    }

    /// Git in the worktree `dir` whose git folder is `git_dir`.
    pub(crate) fn worktree(dir: &Path, git_dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            git_dir: Some(git_dir.to_path_buf()),
        }
    }

    /// Runs `git args`; its standard output, trimmed.
    pub(crate) fn run(&self, args: &[&str]) -> Result<String, GitError> {
        self.run_with(args, &[])
    }

    /// As [`Self::run`], with `env` set for it.
    pub(crate) fn run_with(
        &self,
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Result<String, GitError> {
        let out = self.output(args, env)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(GitError::Failed {
                args: args.join(" "),
                dir: self.dir.clone(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Whether `git args` exits 0 (a query: `merge-base --is-ancestor`,
    /// `diff --quiet`); an error only when git cannot run.
    pub(crate) fn holds(&self, args: &[&str]) -> Result<bool, GitError> {
        Ok(self.output(args, &[])?.status.success())
    }

    /// Runs a search (`git grep`): what it found, or nothing when it
    /// exits 1 (no match); an error when it fails otherwise.
    pub(crate) fn search(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.output(args, &[])?;
        match out.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string()),
            Some(1) => Ok(String::new()),
            _ => Err(GitError::Failed {
                args: args.join(" "),
                dir: self.dir.clone(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }),
        }
    }

    fn output(
        &self,
        args: &[&str],
        env: &[(&str, &Path)],
    ) -> Result<std::process::Output, GitError> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir);
        if let Some(g) = &self.git_dir {
            cmd.arg("--git-dir")
                .arg(g)
                .arg("--work-tree")
                .arg(&self.dir);
        }
        cmd.args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "commit.gpgSign=false",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "advice.detachedHead=false",
            // A background gc started by one instance's commit would
            // pack refs under the others' feet.
            "-c",
            "gc.auto=0",
            "-c",
            "maintenance.auto=false",
        ])
        .args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_EDITOR", "true")
        .env("GIT_PAGER", "cat")
        .env("GIT_AUTHOR_NAME", IDENTITY)
        .env("GIT_AUTHOR_EMAIL", EMAIL)
        .env("GIT_COMMITTER_NAME", IDENTITY)
        .env("GIT_COMMITTER_EMAIL", EMAIL)
        .env("LC_ALL", "C");
        for var in INHERITED {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                GitError::Missing
            } else {
                GitError::Spawn {
                    dir: self.dir.clone(),
                    source,
                }
            }
        })
    }
}
