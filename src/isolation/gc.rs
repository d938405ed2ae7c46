//! Owns `conductor gc`: removing the worktrees (and with `--branches` the
//! branches) of isolated instances that hold no work of their own or whose
//! work a branch of the user's already has, and keeping, with the reason
//! said, every one that is in use by a running apply, has uncommitted
//! changes, or has commits no branch of the user's holds
//! (docs/isolation.md, "Cleaning up"). Nothing is removed that git itself
//! would call unsaved: worktrees are removed without `--force`.

use std::path::{Path, PathBuf};

use super::base::{BaseError, Bases};
use super::git::{Git, GitError};
use super::names::{BRANCH_PREFIX, KEPT_PREFIX, start_ref};
use super::worktree::{WORKTREES, lock_repository, try_hold};

/// Why `gc` could not look.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GcError {
    #[error(transparent)]
    Base(#[from] BaseError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `gc` does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GcOptions {
    /// Say what would be removed; remove nothing.
    pub dry_run: bool,
    /// Remove the branches (and kept branches) too, on the same terms.
    pub branches: bool,
}

/// What became of one worktree or branch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Decision {
    /// A worktree's folder, or a branch.
    pub what: String,
    pub removed: bool,
    pub why: String,
}

/// The decisions of `gc` in the repository `dir` is in.
pub(crate) fn collect(dir: &Path, options: GcOptions) -> Result<Vec<Decision>, GcError> {
    let base = Bases::default().resolve(dir, "HEAD", "")?;
    let repo = Git::at(&base.repo);
    let _held = lock_repository(&base.common_dir).map_err(|source| GcError::Lock {
        path: base.common_dir.join("conductor"),
        source,
    })?;
    let ours = base.common_dir.join(WORKTREES);
    let mut out = Vec::new();
    let mut with_worktree = Vec::new();
    for (path, branch) in worktrees(&repo)? {
        if !path.starts_with(&ours) {
            continue;
        }
        let shown = path
            .strip_prefix(&base.repo)
            .unwrap_or(&path)
            .display()
            .to_string();
        with_worktree.extend(branch.clone());
        // Held through the removal: a loop starting meanwhile waits.
        let Some(_free) = try_hold(&path) else {
            out.push(Decision {
                what: shown,
                removed: false,
                why: "in use by a running apply".into(),
            });
            continue;
        };
        match judge_worktree(&repo, &path, branch.as_deref())? {
            Verdict::Kept(why) => out.push(Decision {
                what: shown,
                removed: false,
                why,
            }),
            Verdict::Removable(reason) => {
                if !options.dry_run {
                    repo.run(&["worktree", "remove", &path.to_string_lossy()])?;
                }
                let b = branch.as_deref().filter(|b| is_ours(b));
                out.push(Decision {
                    what: shown,
                    removed: true,
                    why: match b {
                        Some(b) => format!("branch {b} {}", reason.of_branch()),
                        None => reason.of_branch(),
                    },
                });
                if options.branches
                    && let Some(b) = b
                {
                    out.push(remove_branch(&repo, b, &reason, options)?);
                }
            }
        }
    }
    if options.branches {
        let listed = repo.run(&[
            "for-each-ref",
            "--format=%(refname:short)",
            &format!("refs/heads/{BRANCH_PREFIX}/"),
            &format!("refs/heads/{KEPT_PREFIX}/"),
        ])?;
        for b in listed
            .lines()
            .filter(|b| !with_worktree.iter().any(|w| w == b))
        {
            let tip = repo.run(&["rev-parse", b])?;
            match judge_branch(&repo, b, &tip)? {
                Verdict::Kept(why) => out.push(Decision {
                    what: b.to_string(),
                    removed: false,
                    why,
                }),
                Verdict::Removable(reason) => {
                    out.push(remove_branch(&repo, b, &reason, options)?);
                }
            }
        }
    }
    Ok(out)
}

/// Every worktree of the repository: its folder and branch.
fn worktrees(repo: &Git) -> Result<Vec<(PathBuf, Option<String>)>, GitError> {
    let listed = repo.run(&["worktree", "list", "--porcelain"])?;
    let mut out = Vec::new();
    for block in listed.split("\n\n") {
        let mut path = None;
        let mut branch = None;
        for line in block.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                path = Some(PathBuf::from(p));
            } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                branch = Some(b.to_string());
            }
        }
        if let Some(p) = path {
            out.push((p, branch));
        }
    }
    Ok(out)
}

/// What gc may do with a worktree or branch.
enum Verdict {
    Kept(String),
    Removable(Reason),
}

/// Why a branch holds no unsaved work.
enum Reason {
    NoOwnWork,
    MergedInto(String),
}

impl Reason {
    fn of_branch(&self) -> String {
        match self {
            Self::NoOwnWork => "has no commit of its own".into(),
            Self::MergedInto(into) => format!("is merged into {into}"),
        }
    }
}

/// Whether the worktree at `path` (on `branch`) may go.
fn judge_worktree(repo: &Git, path: &Path, branch: Option<&str>) -> Result<Verdict, GitError> {
    let tree = Git::at(path);
    if !tree.run(&["status", "--porcelain"])?.is_empty() {
        return Ok(Verdict::Kept("it has uncommitted changes".into()));
    }
    match branch {
        Some(b) if is_ours(b) => judge_branch(repo, b, &tree.run(&["rev-parse", "HEAD"])?),
        Some(b) => Ok(Verdict::Kept(format!(
            "it is on branch {b}, which is not conductor's"
        ))),
        None => Ok(Verdict::Kept("its HEAD is on no branch".into())),
    }
}

/// Whether conductor's branch `b` (at `tip`) holds work no branch of the
/// user's has.
fn judge_branch(repo: &Git, b: &str, tip: &str) -> Result<Verdict, GitError> {
    let Some(count) = own_work(repo, b, tip)? else {
        return Ok(Verdict::Removable(Reason::NoOwnWork));
    };
    if let Some(into) = merged_into(repo, tip)? {
        return Ok(Verdict::Removable(Reason::MergedInto(into)));
    }
    Ok(Verdict::Kept(format!(
        "branch {b} has {count} commit{} no branch of yours has; merge it, or drop it with `git branch -D {b}`",
        if count == 1 { "" } else { "s" }
    )))
}

/// How many commits branch `b` has past where its loop started; `None`
/// when none.
fn own_work(repo: &Git, b: &str, tip: &str) -> Result<Option<u64>, GitError> {
    let Ok(start) = repo.run(&["rev-parse", "--verify", "--quiet", &start_ref(b)]) else {
        // A kept branch, or one made before start refs: all of it counts.
        return Ok(Some(1));
    };
    if repo.holds(&["merge-base", "--is-ancestor", tip, &start])? {
        return Ok(None);
    }
    let n = repo.run(&["rev-list", "--count", &format!("{start}..{tip}")])?;
    Ok(Some(n.parse().unwrap_or(1)))
}

/// Whether `b` is one of conductor's branches, the only ones gc removes.
fn is_ours(b: &str) -> bool {
    b.starts_with(&format!("{BRANCH_PREFIX}/")) || b.starts_with(&format!("{KEPT_PREFIX}/"))
}

/// A branch of the user's (not conductor's) that holds `tip`.
fn merged_into(repo: &Git, tip: &str) -> Result<Option<String>, GitError> {
    let holders = repo.run(&["branch", "--contains", tip, "--format=%(refname:short)"])?;
    Ok(holders.lines().find(|b| !is_ours(b)).map(str::to_string))
}

fn remove_branch(
    repo: &Git,
    b: &str,
    reason: &Reason,
    options: GcOptions,
) -> Result<Decision, GitError> {
    if !options.dry_run {
        repo.run(&["branch", "-D", "--quiet", b])?;
        let _ = repo.run(&["update-ref", "-d", &start_ref(b)]);
    }
    Ok(Decision {
        what: b.to_string(),
        removed: true,
        why: match reason {
            Reason::NoOwnWork => "no commit of its own".into(),
            Reason::MergedInto(into) => format!("merged into {into}"),
        },
    })
}
