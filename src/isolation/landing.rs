//! Owns the git steps of a merge node (docs/isolation.md, "Merge nodes"):
//! merging one branch into the merge's worktree and undoing it, what each
//! side of a conflict changed, taking a resolved conflict as a merge
//! commit, and moving the target branch to the result, never over a
//! person's uncommitted changes and never when it moved meanwhile.

use std::path::{Path, PathBuf};

use super::git::Git;
use super::worktree::{Place, WorktreeError, require_branch};

/// The most of each side's diff a resolving agent is told.
const SIDE_MAX: usize = 20_000;

/// What merging one branch came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Merged: the merge commit.
    Merged(String),
    /// The target already holds the branch.
    Already,
    /// The merge stopped on conflicts in these files, left in the worktree
    /// to be resolved or undone.
    Conflict(Vec<String>),
}

/// What a resolving agent's work on a stopped merge came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Concluded {
    /// The merge commit.
    Committed(String),
    /// These files are still conflicted, or hold conflict markers.
    Unresolved(Vec<String>),
    /// The merge is not there to conclude any more: why.
    Abandoned(String),
}

/// Why the target branch was not moved to the merged work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LandError {
    #[error(transparent)]
    Worktree(#[from] WorktreeError),
    #[error("{branch} is checked out in {} with uncommitted changes ({}): nothing there was touched; commit or stash them, then land the merged work with `git -C {} merge --ff-only {from}`", path.display(), files.join(", "), path.display())]
    Dirty {
        branch: String,
        path: PathBuf,
        files: Vec<String>,
        from: String,
    },
    #[error("could not fast-forward {branch} in {}: {reason}; nothing there was changed, and the merged work is on {from}", path.display())]
    FastForward {
        branch: String,
        path: PathBuf,
        reason: String,
        from: String,
    },
    #[error("the merged work on {from} does not hold {branch}'s commit {}: {branch} was left where it is", &was[..was.len().min(12)])]
    NotAhead {
        branch: String,
        was: String,
        from: String,
    },
    #[error("{branch} moved while the merge ran (it was {}, it is {}): it was left where it is; the merged work is on {from}", &was[..was.len().min(12)], &now[..now.len().min(12)])]
    Moved {
        branch: String,
        was: String,
        now: String,
        from: String,
    },
}

impl Place {
    /// The worktree's commit.
    pub(crate) fn head(&self) -> Result<String, WorktreeError> {
        Ok(self.tree()?.run(&["rev-parse", "HEAD"])?)
    }

    /// Merges `branch` (the work of `instance`) into the worktree with
    /// `message`; a conflict is left in place.
    pub(crate) fn merge_branch(
        &self,
        branch: &str,
        instance: &str,
        message: &str,
    ) -> Result<Step, WorktreeError> {
        let tree = self.tree()?;
        let branch_ref = require_branch(&tree, instance, branch)?;
        if tree.holds(&["merge-base", "--is-ancestor", &branch_ref, "HEAD"])? {
            return Ok(Step::Already);
        }
        match tree.run(&["merge", "--no-ff", "--no-edit", "-m", message, &branch_ref]) {
            Ok(_) => Ok(Step::Merged(tree.run(&["rev-parse", "HEAD"])?)),
            Err(e) => {
                let files = self.unmerged()?;
                if files.is_empty() {
                    // Not a conflict: git refused for another reason.
                    let _ = tree.run(&["merge", "--abort"]);
                    return Err(e.into());
                }
                Ok(Step::Conflict(files))
            }
        }
    }

    /// The files a stopped merge left conflicted.
    pub(crate) fn unmerged(&self) -> Result<Vec<String>, WorktreeError> {
        let out = self
            .tree()?
            .run(&["diff", "--name-only", "--diff-filter=U"])?;
        Ok(out.lines().map(str::to_string).collect())
    }

    /// Puts the worktree back on its branch at `commit`, a stopped merge
    /// and all (wherever an agent left it: no other branch moves).
    pub(crate) fn undo_to(&self, commit: &str) -> Result<(), WorktreeError> {
        let tree = self.tree()?;
        let _ = tree.run(&["merge", "--abort"]);
        tree.run(&["checkout", "--quiet", "--force", "-B", &self.branch, commit])?;
        tree.run(&["clean", "-d", "--force", "--quiet"])?;
        Ok(())
    }

    /// Drops what the worktree holds uncommitted, and puts it back on its
    /// branch: for a worktree that holds no one's work but committed
    /// merges (a merge node's). Nothing when there is no worktree yet.
    pub(crate) fn discard_uncommitted(&self) -> Result<(), WorktreeError> {
        if !self.path.join(".git").exists() {
            return Ok(());
        }
        let tree = self.tree()?;
        let _ = tree.run(&["merge", "--abort"]);
        let branch_ref = format!("refs/heads/{}", self.branch);
        if tree.holds(&["rev-parse", "--verify", "--quiet", &branch_ref])? {
            tree.run(&["checkout", "--quiet", "--force", &self.branch])?;
        }
        tree.run(&["reset", "--hard", "--quiet"])?;
        tree.run(&["clean", "-d", "--force", "--quiet"])?;
        Ok(())
    }

    /// What each side of the stopped merge of `branch` changed in `files`
    /// since they parted: the target's, then the branch's, each cut to a
    /// size an agent can read.
    pub(crate) fn sides(
        &self,
        branch: &str,
        files: &[String],
    ) -> Result<(String, String), WorktreeError> {
        let tree = self.tree()?;
        let branch_ref = format!("refs/heads/{branch}");
        let parted = tree.run(&["merge-base", "HEAD", &branch_ref])?;
        let side = |to: &str| -> Result<String, WorktreeError> {
            let mut args = vec!["diff", "--no-color", "--no-ext-diff", &parted, to, "--"];
            args.extend(files.iter().map(String::as_str));
            Ok(cut(tree.run(&args)?))
        };
        Ok((side("HEAD")?, side(&branch_ref)?))
    }

    /// Takes the resolution of the stopped merge of `branch`, begun at
    /// `before`, as its merge commit. An agent that committed the merge
    /// itself is taken at its word when its commit holds both sides, is on
    /// the worktree's branch and holds no conflict marker.
    pub(crate) fn conclude(
        &self,
        branch: &str,
        before: &str,
        files: &[String],
        message: &str,
    ) -> Result<Concluded, WorktreeError> {
        let tree = self.tree()?;
        let on = tree
            .run(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            .unwrap_or_else(|_| "a detached HEAD".to_string());
        if on != self.branch {
            return Ok(Concluded::Abandoned(format!(
                "it left the worktree on {on}, not on {}",
                self.branch
            )));
        }
        let branch_ref = format!("refs/heads/{branch}");
        let merging = tree.holds(&["rev-parse", "--verify", "--quiet", "MERGE_HEAD"])?;
        // Lines that open or close a conflict, left in `files` as staged
        // (`at`: `None`) or as committed at `at`.
        let marked = |at: Option<&str>| -> Result<Vec<String>, WorktreeError> {
            let mut grep = vec!["grep", "-l"];
            if at.is_none() {
                grep.push("--cached");
            }
            grep.extend(["-E", "^(<<<<<<<|>>>>>>>)( |$)"]);
            grep.extend(at);
            grep.push("--");
            grep.extend(files.iter().map(String::as_str));
            Ok(tree
                .search(&grep)?
                .lines()
                // Matches at a commit read `<commit>:<file>`.
                .map(|l| match at {
                    Some(_) => l.split_once(':').map_or(l, |(_, f)| f).to_string(),
                    None => l.to_string(),
                })
                .collect())
        };
        if !merging {
            let holds = |commit: &str| tree.holds(&["merge-base", "--is-ancestor", commit, "HEAD"]);
            if !(holds(&branch_ref)? && holds(before)?) {
                return Ok(Concluded::Abandoned(
                    "the merge was given up (no merge is in progress, and the branch is not in the worktree)"
                        .to_string(),
                ));
            }
            let left = marked(Some("HEAD"))?;
            return Ok(if left.is_empty() {
                Concluded::Committed(tree.run(&["rev-parse", "HEAD"])?)
            } else {
                Concluded::Unresolved(left)
            });
        }
        tree.run(&["add", "--all", "--", "."])?;
        let left = self.unmerged()?;
        if !left.is_empty() {
            return Ok(Concluded::Unresolved(left));
        }
        let left = marked(None)?;
        if !left.is_empty() {
            return Ok(Concluded::Unresolved(left));
        }
        tree.run(&["commit", "--quiet", "--no-verify", "-m", message])?;
        Ok(Concluded::Committed(tree.run(&["rev-parse", "HEAD"])?))
    }

    /// Moves branch `into` from `was` (its tip when the merge started;
    /// `None`: it did not exist) to the worktree's commit. Where `into` is
    /// checked out, that checkout is fast-forwarded, and only when it is
    /// clean and still at `was`.
    pub(crate) fn land(&self, into: &str, was: Option<&str>) -> Result<String, LandError> {
        let result = self.head()?;
        let repo = self.repo();
        let into_ref = format!("refs/heads/{into}");
        let now = repo
            .run(&["rev-parse", "--verify", "--quiet", &into_ref])
            .ok();
        if now.as_deref() != was {
            return Err(LandError::Moved {
                branch: into.to_string(),
                was: was.unwrap_or("nothing").to_string(),
                now: now.unwrap_or_else(|| "gone".to_string()),
                from: self.branch.clone(),
            });
        }
        let Some(was) = was else {
            repo.run(&["branch", into, &result])
                .map_err(WorktreeError::from)?;
            return Ok(result);
        };
        if !repo
            .holds(&["merge-base", "--is-ancestor", was, &result])
            .map_err(WorktreeError::from)?
        {
            return Err(LandError::NotAhead {
                branch: into.to_string(),
                was: was.to_string(),
                from: self.branch.clone(),
            });
        }
        match checked_out(&repo, &into_ref)? {
            None => {
                repo.run(&["update-ref", &into_ref, &result, was])
                    .map_err(WorktreeError::from)?;
            }
            Some(path) => {
                let there = Git::at(&path);
                let dirty = there
                    .run(&["status", "--porcelain", "--untracked-files=no"])
                    .map_err(WorktreeError::from)?;
                if !dirty.trim().is_empty() {
                    return Err(LandError::Dirty {
                        branch: into.to_string(),
                        path,
                        files: dirty
                            .lines()
                            .map(|l| l.get(3..).unwrap_or(l).to_string())
                            .collect(),
                        from: self.branch.clone(),
                    });
                }
                if let Err(e) = there.run(&["merge", "--ff-only", "--quiet", &result]) {
                    let reason = match e {
                        super::git::GitError::Failed { stderr, .. } => stderr,
                        other => other.to_string(),
                    };
                    return Err(LandError::FastForward {
                        branch: into.to_string(),
                        path,
                        reason,
                        from: self.branch.clone(),
                    });
                }
            }
        }
        Ok(result)
    }
}

/// The worktree (the main checkout included) that has `branch_ref`
/// checked out.
fn checked_out(repo: &Git, branch_ref: &str) -> Result<Option<PathBuf>, WorktreeError> {
    let list = repo.run(&["worktree", "list", "--porcelain"])?;
    let mut path: Option<&str> = None;
    for line in list.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            path = Some(p);
        } else if line.strip_prefix("branch ") == Some(branch_ref) {
            return Ok(path.map(|p| Path::new(p).to_path_buf()));
        }
    }
    Ok(None)
}

/// `text`, cut to [`SIDE_MAX`] bytes at a line's end.
fn cut(text: String) -> String {
    if text.len() <= SIDE_MAX {
        return text;
    }
    let mut end = SIDE_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').unwrap_or(end);
    format!(
        "{}\n... (cut at {} of {} bytes: run `git diff` in the worktree for all)",
        &text[..end],
        end,
        text.len()
    )
}
