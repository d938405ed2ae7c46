//! Owns one isolated instance's git worktree: its branch and folder, named
//! from the workflow and the instance key; making it ready for a loop
//! (created from the base, continued on resume, started over from the base
//! with any earlier work kept on a branch of its own); the commit of each
//! iteration's changes; and what the instance changed against its base
//! (docs/isolation.md).

use std::path::{Path, PathBuf};

use super::base::Base;
use super::git::{Git, GitError};
use super::names::{BRANCH_PREFIX, KEPT_PREFIX, branch_name, ref_safe, start_ref};

/// Where conductor keeps its worktrees, inside the repository's git
/// folder: never in the user's checkout, where they would show as
/// untracked files and wake file watchers.
pub(crate) const WORKTREES: &str = "conductor/worktrees";

/// Why an instance's worktree cannot be made ready or committed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorktreeError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("the workdir {} is not inside the repository {}", workdir.display(), repo.display())]
    Outside { workdir: PathBuf, repo: PathBuf },
    #[error("cannot create {}: {source}", dir.display())]
    Create {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("the worktree {} is not one the repository knows of: remove the folder, and the next run makes it again", path.display())]
    NotRegistered { path: PathBuf },
    #[error("the worktree {} is in use by another loop (another apply of this workflow, or `conductor gc`)", path.display())]
    InUse { path: PathBuf },
    #[error("the worktree {} is on {on}, not on its branch {branch}: nothing was committed, and its changes are still there; check out {branch} in it (`git -C {} checkout {branch}`), or move it aside", path.display(), path.display())]
    ForeignHead {
        path: PathBuf,
        on: String,
        branch: String,
    },
    #[error(
        "the work of {from} is to come from branch {branch}, which is not in this repository (removed, or {from} ran in another one): run {from} again with `--force={from}`"
    )]
    NeedBranchMissing { from: String, branch: String },
    #[error("merging the work of {from} (branch {branch}) conflicts in {}", files.join(", "))]
    Conflict {
        from: String,
        branch: String,
        files: Vec<String>,
    },
}

/// One instance's worktree.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    /// Its branch (`conductor/<workflow>/<instance>`).
    pub branch: String,
    /// The worktree's top folder.
    pub path: PathBuf,
    /// Where the agent runs: the workdir's place in the worktree.
    pub workdir: PathBuf,
    pub base: Base,
}

/// What making a worktree ready did that a person should know.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    /// Work an interrupted iteration left uncommitted, committed now.
    pub recovered: Option<String>,
    /// An earlier run's branch, moved aside rather than reset (its name).
    pub kept: Option<String>,
    /// A conflict left for a resolving agent.
    pub conflict: Option<Pending>,
}

/// A need's branch whose merge stopped on a conflict, left in the
/// worktree, and the branches still to merge after it.
#[derive(Debug)]
pub(crate) struct Pending {
    pub from: String,
    pub branch: String,
    pub files: Vec<String>,
    pub rest: Vec<(String, String)>,
}

/// What an instance's branch changed against its base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// The branch's commit.
    pub head: String,
    /// Each changed file, relative to the repository.
    pub files: Vec<String>,
    pub insertions: u64,
    pub deletions: u64,
}

impl Place {
    /// The worktree of instance `key` of `workflow`, whose workdir (in the
    /// user's checkout) is `workdir`.
    pub(crate) fn new(
        base: &Base,
        workflow: &str,
        key: &str,
        workdir: &Path,
    ) -> Result<Self, WorktreeError> {
        // git gives the repository's path with links resolved.
        let resolved = std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf());
        let rel = resolved
            .strip_prefix(&base.repo)
            .or_else(|_| workdir.strip_prefix(&base.repo))
            .map_err(|_| WorktreeError::Outside {
                workdir: workdir.to_path_buf(),
                repo: base.repo.clone(),
            })?;
        let (wf, k) = (ref_safe(workflow), ref_safe(key));
        let path = base.common_dir.join(WORKTREES).join(&wf).join(&k);
        Ok(Self {
            branch: branch_name(workflow, key),
            workdir: if rel.as_os_str().is_empty() {
                path.clone()
            } else {
                path.join(rel)
            },
            path,
            base: base.clone(),
        })
    }

    pub(super) fn repo(&self) -> Git {
        Git::at(&self.base.repo)
    }

    /// Git in the worktree, through the git folder the repository
    /// records for it (never the one its `.git` file names).
    pub(super) fn tree(&self) -> Result<Git, WorktreeError> {
        let admin = self
            .admin_dir()
            .ok_or_else(|| WorktreeError::NotRegistered {
                path: self.path.clone(),
            })?;
        Ok(Git::worktree(&self.path, &admin))
    }

    /// The repository's record of this worktree, `.git/worktrees/<id>`,
    /// found by the path it records. git names it after the worktree's
    /// folder, so that one is tried first; the others only when git had to
    /// add a number (two workflows with an instance of one name).
    fn admin_dir(&self) -> Option<PathBuf> {
        // git records the path as it resolved it (links followed).
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let dot_git = self.path.join(".git");
        let wanted = [dot_git.clone(), real(&dot_git)];
        let records_this = |admin: &Path| {
            std::fs::read_to_string(admin.join("gitdir")).is_ok_and(|recorded| {
                let recorded = Path::new(recorded.trim());
                wanted.iter().any(|w| w == recorded || *w == real(recorded))
            })
        };
        let records = self.base.common_dir.join("worktrees");
        if let Some(named) = self.path.file_name().map(|n| records.join(n))
            && records_this(&named)
        {
            return Some(named);
        }
        std::fs::read_dir(&records)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|admin| records_this(admin))
    }

    /// Makes the worktree ready for a loop. `resume` continues its branch
    /// (committing what an interrupted iteration left, as `interrupted`
    /// says); otherwise the loop starts from the base, an earlier run's
    /// work kept on a branch of its own unless the base already holds it,
    /// with the branches in `merge` merged in (see [`Self::merge_needs`]).
    pub(crate) fn open(
        &self,
        resume: bool,
        interrupted: &str,
        merge: &[(String, String)],
        keep_conflict: bool,
    ) -> Result<Opened, WorktreeError> {
        // git does not make worktrees, or prune them, safely side by side:
        // one instance at a time per repository, across applies too.
        let _held =
            lock_repository(&self.base.common_dir).map_err(|source| WorktreeError::Create {
                dir: self.base.common_dir.join("conductor"),
                source,
            })?;
        let mut opened = Opened::default();
        let repo = self.repo();
        let branch_ref = format!("refs/heads/{}", self.branch);
        let tip = repo
            .run(&["rev-parse", "--verify", "--quiet", &branch_ref])
            .ok();
        let present = self.path.join(".git").exists();
        if present {
            // Whatever an earlier loop left uncommitted is its work (and
            // a worktree an agent left on another branch is refused).
            opened.recovered = self.commit(interrupted)?;
        } else {
            // A folder removed underneath git leaves its record behind:
            // this worktree's record goes, nobody else's.
            if let Some(admin) = self.admin_dir() {
                std::fs::remove_dir_all(&admin).map_err(|source| WorktreeError::Create {
                    dir: admin.clone(),
                    source,
                })?;
            }
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| WorktreeError::Create {
                    dir: parent.to_path_buf(),
                    source,
                })?;
            }
            let path = self.path.to_string_lossy();
            match &tip {
                Some(_) => repo.run(&["worktree", "add", &path, &self.branch])?,
                None => repo.run(&[
                    "worktree",
                    "add",
                    "-b",
                    &self.branch,
                    &path,
                    &self.base.commit,
                ])?,
            };
        }
        // A loop killed before its branch was made has nothing to resume.
        if !resume || tip.is_none() {
            let tip = self.tree()?.run(&["rev-parse", "HEAD"])?;
            if tip != self.base.commit {
                // Nothing is lost when the base holds the tip, or the
                // tip is where the last loop started (its needs' work,
                // which their own branches hold).
                let started = repo
                    .run(&["rev-parse", "--verify", "--quiet", &self.start_ref()])
                    .ok();
                let held = started.as_deref() == Some(tip.as_str())
                    || repo.holds(&["merge-base", "--is-ancestor", &tip, &self.base.commit])?;
                if !held {
                    let kept = format!(
                        "{KEPT_PREFIX}/{}/{}",
                        self.branch
                            .strip_prefix(BRANCH_PREFIX)
                            .map_or(self.branch.as_str(), |b| b.trim_start_matches('/')),
                        &tip[..tip.len().min(12)]
                    );
                    repo.run(&["branch", "--force", &kept, &tip])?;
                    opened.kept = Some(kept);
                }
                self.tree()?
                    .run(&["reset", "--hard", "--quiet", &self.base.commit])?;
                self.tree()?.run(&["clean", "-d", "--force", "--quiet"])?;
            }
            opened.conflict = self.merge_needs(merge, keep_conflict)?;
        }
        if !self.workdir.is_dir() {
            // A workdir with no tracked file is not in the commit.
            std::fs::create_dir_all(&self.workdir).map_err(|source| WorktreeError::Create {
                dir: self.workdir.clone(),
                source,
            })?;
        }
        Ok(opened)
    }

    fn start_ref(&self) -> String {
        start_ref(&self.branch)
    }

    /// Merges the needs' branches in `merge` (instance, branch) in turn,
    /// then marks where the loop's own changes start. A conflict is undone
    /// and said with its files; with `keep_conflict`, it is left in place
    /// and returned with the branches still to merge, for a resolving
    /// agent (and this is called again with those once it is resolved).
    pub(crate) fn merge_needs(
        &self,
        merge: &[(String, String)],
        keep_conflict: bool,
    ) -> Result<Option<Pending>, WorktreeError> {
        for (i, (from, branch)) in merge.iter().enumerate() {
            match self.merge(from, branch, keep_conflict) {
                Ok(()) => {}
                Err(WorktreeError::Conflict {
                    from,
                    branch,
                    files,
                }) if keep_conflict && !files.is_empty() => {
                    return Ok(Some(Pending {
                        from,
                        branch,
                        files,
                        rest: merge.get(i + 1..).unwrap_or_default().to_vec(),
                    }));
                }
                Err(e) => return Err(e),
            }
        }
        // What the loop itself changed is counted from here.
        let start = self.tree()?.run(&["rev-parse", "HEAD"])?;
        self.repo()
            .run(&["update-ref", &self.start_ref(), &start])?;
        Ok(None)
    }

    /// Merges `branch` (the work of `from`) into the worktree; a conflict
    /// is undone (unless `keep_conflict`) and said with its files.
    fn merge(&self, from: &str, branch: &str, keep_conflict: bool) -> Result<(), WorktreeError> {
        let tree = self.tree()?;
        require_branch(&tree, from, branch)?;
        let message = need_merge_message(from, branch);
        if tree.holds(&["merge", "--no-ff", "--no-edit", "-m", &message, branch])? {
            return Ok(());
        }
        let files = tree.run(&["diff", "--name-only", "--diff-filter=U"])?;
        if !keep_conflict || files.is_empty() {
            let _ = tree.run(&["merge", "--abort"]);
        }
        Err(WorktreeError::Conflict {
            from: from.to_string(),
            branch: branch.to_string(),
            files: files.lines().map(str::to_string).collect(),
        })
    }

    /// Commits everything changed in the worktree (untracked files too,
    /// ignored ones not) with `message`; the commit, or `None` when
    /// nothing changed.
    pub(crate) fn commit(&self, message: &str) -> Result<Option<String>, WorktreeError> {
        let tree = self.tree()?;
        // Only ever onto the instance's own branch: an agent that checked
        // out another (or detached HEAD) keeps its changes uncommitted
        // there, and no branch but conductor's moves.
        let on = tree
            .run(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            .ok();
        if on.as_deref() != Some(self.branch.as_str()) {
            let on = match on {
                Some(b) => format!("branch {b}"),
                None => format!(
                    "a detached HEAD at {}",
                    tree.run(&["rev-parse", "--short", "HEAD"])
                        .unwrap_or_default()
                ),
            };
            return Err(WorktreeError::ForeignHead {
                path: self.path.clone(),
                on,
                branch: self.branch.clone(),
            });
        }
        tree.run(&["add", "--all", "--", "."])?;
        if tree.holds(&["diff", "--cached", "--quiet"])? {
            return Ok(None);
        }
        tree.run(&["commit", "--quiet", "--no-verify", "-m", message])?;
        Ok(Some(tree.run(&["rev-parse", "HEAD"])?))
    }

    /// What the loop changed: its branch against where it started (the
    /// base, with its needs' work merged in).
    pub(crate) fn changes(&self) -> Result<Changes, WorktreeError> {
        let tree = self.tree()?;
        let head = tree.run(&["rev-parse", "HEAD"])?;
        let start = self
            .repo()
            .run(&["rev-parse", "--verify", "--quiet", &self.start_ref()])
            .unwrap_or_else(|_| self.base.commit.clone());
        let numstat = tree.run(&["diff", "--numstat", "--no-renames", "-z", &start, &head])?;
        let mut changes = Changes {
            head,
            ..Changes::default()
        };
        for entry in numstat.split('\0').filter(|e| !e.is_empty()) {
            let mut parts = entry.splitn(3, '\t');
            let (Some(add), Some(del), Some(file)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            // A binary file counts `-` lines.
            changes.insertions += add.parse::<u64>().unwrap_or(0);
            changes.deletions += del.parse::<u64>().unwrap_or(0);
            changes.files.push(file.to_string());
        }
        Ok(changes)
    }
}

/// The message of the commit that merges the work of need `from` (its
/// branch `branch`) into a worktree.
pub(crate) fn need_merge_message(from: &str, branch: &str) -> String {
    format!("conductor: merge the work of {from} ({branch})")
}

/// `refs/heads/<branch>`, when the repository has it; otherwise the work
/// of `from` is missing.
pub(super) fn require_branch(
    tree: &Git,
    from: &str,
    branch: &str,
) -> Result<String, WorktreeError> {
    let branch_ref = format!("refs/heads/{branch}");
    if tree.holds(&["rev-parse", "--verify", "--quiet", &branch_ref])? {
        Ok(branch_ref)
    } else {
        Err(WorktreeError::NeedBranchMissing {
            from: from.to_string(),
            branch: branch.to_string(),
        })
    }
}

/// The repository's lock for making worktrees ready and removing them,
/// held until the file it returns is dropped.
pub(crate) fn lock_repository(common_dir: &Path) -> std::io::Result<std::fs::File> {
    let dir = common_dir.join("conductor");
    std::fs::create_dir_all(&dir)?;
    let file = lock_file(&dir.join("worktrees.lock"))?;
    file.lock()?;
    Ok(file)
}

/// A lock file, made when missing, never emptied.
fn lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

/// The file a loop holds locked while it runs in the worktree at `path`.
fn loop_lock(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The loop lock of the worktree at `path`, held until dropped; `None`
/// when a running loop holds it.
pub(crate) fn try_hold(path: &Path) -> Option<std::fs::File> {
    let file = lock_file(&loop_lock(path)).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

impl Place {
    /// Holds the worktree for a loop, until the file it returns is
    /// dropped: `conductor gc` leaves it alone meanwhile.
    pub(crate) fn hold(&self) -> Result<std::fs::File, WorktreeError> {
        let path = loop_lock(&self.path);
        let create = |source| WorktreeError::Create {
            dir: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(create)?;
        }
        let file = lock_file(&path).map_err(create)?;
        // Never waited for on an async worker: a holder is another loop.
        file.try_lock().map_err(|_| WorktreeError::InUse {
            path: self.path.clone(),
        })?;
        Ok(file)
    }
}
