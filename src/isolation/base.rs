//! Owns finding what isolated instances start from, once per apply: the
//! repository a workdir is in, and the commit its `base` names: `HEAD`, a
//! ref, or `working-tree`, the checkout with its uncommitted and untracked
//! changes, snapshotted as a commit through an index of conductor's own so
//! that the user's index and files are never touched (docs/isolation.md,
//! "Bases").

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::git::{Git, GitError};

/// `base = "working-tree"`.
pub(crate) const WORKING_TREE: &str = "working-tree";

/// Why an isolated instance cannot have its base.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BaseError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{} is not in a git repository", dir.display())]
    NotARepository { dir: PathBuf },
    #[error("the repository {} has no commit yet", repo.display())]
    NoCommit { repo: PathBuf },
    #[error("`{base}` names no commit in {}", repo.display())]
    Unknown { base: String, repo: PathBuf },
    #[error("cannot snapshot the working tree of {}: {source}", repo.display())]
    Snapshot { repo: PathBuf, source: GitError },
}

impl BaseError {
    /// What to do about it.
    pub(crate) fn help(&self) -> String {
        match self {
            Self::Git(GitError::Missing) => {
                "install git (`apt install git`), or set `isolation = \"none\"`".into()
            }
            Self::NotARepository { .. } => {
                "run it in a git repository (`git init` and a first commit), or set `isolation = \"none\"`".into()
            }
            Self::NoCommit { .. } => {
                "make a first commit (`git commit --allow-empty -m start`): worktrees start from one".into()
            }
            Self::Unknown { .. } => {
                "name a branch, tag or commit that exists (`git branch -a`), `HEAD`, or `working-tree`".into()
            }
            Self::Git(_) | Self::Snapshot { .. } => "see what git said above".into(),
        }
    }
}

/// A repository and the commit instances start from in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Base {
    /// The repository's top folder (the user's checkout).
    pub repo: PathBuf,
    /// Its git folder shared by every worktree (`.git`).
    pub common_dir: PathBuf,
    /// The commit, in full.
    pub commit: String,
}

/// The bases of one apply, each found once.
#[derive(Debug, Default)]
pub(crate) struct Bases {
    repos: HashMap<PathBuf, (PathBuf, PathBuf)>,
    commits: HashMap<(PathBuf, String), String>,
    /// The runs root: never part of a `working-tree` snapshot.
    runs_root: Option<PathBuf>,
}

impl Bases {
    pub(crate) fn new(runs_root: Option<&Path>) -> Self {
        Self {
            runs_root: runs_root.map(Path::to_path_buf),
            ..Self::default()
        }
    }

    /// The base `spec` names for a workdir `dir`; `workflow` names the
    /// snapshot a `working-tree` base makes.
    pub(crate) fn resolve(
        &mut self,
        dir: &Path,
        spec: &str,
        workflow: &str,
    ) -> Result<Base, BaseError> {
        let (repo, common_dir) = self.repo_of(dir)?;
        let key = (repo.clone(), spec.to_string());
        let commit = match self.commits.get(&key) {
            Some(c) => c.clone(),
            None => {
                let real = self
                    .runs_root
                    .as_deref()
                    .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.to_path_buf()));
                let leave_out = real
                    .as_deref()
                    .and_then(|r| r.strip_prefix(&repo).ok())
                    .filter(|r| !r.as_os_str().is_empty())
                    .map(Path::to_path_buf);
                let c = commit_of(&repo, &common_dir, spec, workflow, leave_out.as_deref())?;
                self.commits.insert(key, c.clone());
                c
            }
        };
        Ok(Base {
            repo,
            common_dir,
            commit,
        })
    }

    fn repo_of(&mut self, dir: &Path) -> Result<(PathBuf, PathBuf), BaseError> {
        if let Some(r) = self.repos.get(dir) {
            return Ok(r.clone());
        }
        let git = Git::at(dir);
        let out = git.run(&["rev-parse", "--show-toplevel", "--git-common-dir"]);
        let out = match out {
            Ok(o) => o,
            Err(GitError::Failed { .. }) => {
                return Err(BaseError::NotARepository {
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let mut lines = out.lines();
        let (Some(top), Some(common)) = (lines.next(), lines.next()) else {
            return Err(BaseError::NotARepository {
                dir: dir.to_path_buf(),
            });
        };
        let top = PathBuf::from(top);
        // `--git-common-dir` is relative to the folder asked in.
        let common = crate::paths::normalize(&dir.join(common));
        let found = (top, common);
        self.repos.insert(dir.to_path_buf(), found.clone());
        Ok(found)
    }
}

fn commit_of(
    repo: &Path,
    common_dir: &Path,
    spec: &str,
    workflow: &str,
    leave_out: Option<&Path>,
) -> Result<String, BaseError> {
    let git = Git::at(repo);
    let head = git
        .run(&["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
        .ok();
    if spec == WORKING_TREE {
        let Some(head) = head else {
            return Err(BaseError::NoCommit {
                repo: repo.to_path_buf(),
            });
        };
        return snapshot(&git, common_dir, &head, workflow, leave_out).map_err(|source| {
            BaseError::Snapshot {
                repo: repo.to_path_buf(),
                source,
            }
        });
    }
    if spec == "HEAD" {
        return head.ok_or_else(|| BaseError::NoCommit {
            repo: repo.to_path_buf(),
        });
    }
    // A rendered base that git would read as an option names no commit.
    if spec.starts_with('-') || spec.trim().is_empty() {
        return Err(BaseError::Unknown {
            base: spec.to_string(),
            repo: repo.to_path_buf(),
        });
    }
    git.run(&[
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &format!("{spec}^{{commit}}"),
    ])
    .map_err(|_| BaseError::Unknown {
        base: spec.to_string(),
        repo: repo.to_path_buf(),
    })
}

/// The checkout as it is, tracked changes and untracked files (not the
/// ignored ones) included, as a commit on `head`; `head` itself when
/// nothing differs. Kept from git's garbage collection by a ref of
/// conductor's own.
fn snapshot(
    git: &Git,
    common_dir: &Path,
    head: &str,
    workflow: &str,
    leave_out: Option<&Path>,
) -> Result<String, GitError> {
    let dir = common_dir.join("conductor");
    std::fs::create_dir_all(&dir).map_err(|source| GitError::Spawn {
        dir: dir.clone(),
        source,
    })?;
    let index = dir.join(format!("snapshot-index-{}", std::process::id()));
    let env = [("GIT_INDEX_FILE", index.as_path())];
    let made = (|| {
        git.run_with(&["read-tree", head], &env)?;
        let exclude = leave_out.map(|p| format!(":(exclude,literal){}", p.display()));
        let mut add = vec!["add", "--all", "--", "."];
        add.extend(exclude.as_deref());
        git.run_with(&add, &env)?;
        let tree = git.run_with(&["write-tree"], &env)?;
        if git.run(&["rev-parse", &format!("{head}^{{tree}}")])? == tree {
            return Ok(head.to_string());
        }
        let message = format!("conductor: the working tree at the start of {workflow}");
        let commit = git.run(&["commit-tree", &tree, "-p", head, "-m", &message])?;
        git.run(&[
            "update-ref",
            &format!("refs/conductor/bases/{}", super::names::ref_safe(workflow)),
            &commit,
        ])?;
        Ok(commit)
    })();
    let _ = std::fs::remove_file(&index);
    made
}
