//! Owns the run store's layout (docs/run-store.md): where the runs root is
//! (and that the default one stays out of git), and the names of the
//! project, task and run folders' files. Every path
//! into the store is built here, so the layout the Go seed's tools read is
//! spelled once:
//!
//! ```text
//! <root>/<project>/PROJECT-MESSAGE-BUS.md
//! <root>/<project>/<task>/TASK.md, TASK-MESSAGE-BUS.md, DONE, fingerprint.json
//! <root>/<project>/<task>/runs/<run>/run-info.yaml, prompt.md, output.md,
//!                                     agent-stdout.txt, agent-stderr.txt
//! ```

use std::path::{Path, PathBuf};

/// A project bus's file name.
pub const PROJECT_BUS: &str = "PROJECT-MESSAGE-BUS.md";
/// A task bus's file name.
pub const TASK_BUS: &str = "TASK-MESSAGE-BUS.md";
/// The folder conductor keeps for itself in a workdir (the default root is
/// inside); it is never an input, a glob item or a stall signal.
pub const CONDUCTOR_DIR: &str = ".conductor";

/// `<root>/.cli-versions.json`: the agent CLIs' versions, by binary, kept
/// between applies (docs/run-store.md).
pub fn versions_cache(root: &Path) -> PathBuf {
    root.join(".cli-versions.json")
}

/// The runs root: `--root` (relative to the current directory), else
/// `CONDUCTOR_ROOT`, else `declared` (the workflow's `root`, already
/// relative to its file), else `.conductor/runs` under the current
/// directory.
pub fn runs_root(flag: Option<&Path>, declared: Option<PathBuf>) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let chosen = flag
        .map(|r| cwd.join(r))
        .or_else(|| {
            std::env::var_os("CONDUCTOR_ROOT")
                .filter(|v| !v.is_empty())
                .map(|r| cwd.join(r))
        })
        .or(declared)
        .unwrap_or_else(|| cwd.join(CONDUCTOR_DIR).join("runs"));
    crate::paths::normalize(&chosen)
}

/// The `.conductor` folder a runs root sits in, as the default one does.
pub fn conductor_dir_of(root: &Path) -> Option<&Path> {
    root.parent().filter(|p| p.ends_with(CONDUCTOR_DIR))
}

/// Keeps a runs root that sits in a `.conductor` folder (the default) out
/// of git: that folder gets a `.gitignore` of `*`, once. Best effort: a
/// root git can see still works.
pub fn keep_out_of_git(root: &Path) {
    if let Some(dot) = conductor_dir_of(root) {
        let ignore = dot.join(".gitignore");
        if !ignore.exists() {
            let _ = crate::private::create_dir_all(dot);
            let _ = std::fs::write(&ignore, "*\n");
        }
    }
}

/// `<root>/<project>`: a project's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectDir(PathBuf);

impl ProjectDir {
    pub fn new(root: &Path, project: &str) -> Self {
        Self(root.join(project))
    }

    /// A folder already known to be a project's.
    pub fn at(path: PathBuf) -> Self {
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The project bus.
    pub fn bus(&self) -> PathBuf {
        self.0.join(PROJECT_BUS)
    }

    pub fn task(&self, task_id: &str) -> TaskDir {
        TaskDir(self.0.join(task_id))
    }

    /// What an apply whose units run elsewhere has spent, as its
    /// dispatcher counts it (docs/distributed.md, "Budgets").
    pub fn spent(&self, apply_id: &str) -> PathBuf {
        self.0.join(format!("{apply_id}.spent"))
    }

    /// How many agent runs an apply whose units run elsewhere has started,
    /// for `[limits] max_agents` (`store::counter`).
    pub fn agent_runs(&self, apply_id: &str) -> PathBuf {
        self.0.join(format!("{apply_id}.agents"))
    }
}

impl AsRef<Path> for ProjectDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// `<project>/<task>`: one node instance's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDir(PathBuf);

impl TaskDir {
    /// A folder already known to be a task's.
    pub fn at(path: PathBuf) -> Self {
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn into_path(self) -> PathBuf {
        self.0
    }

    /// The task bus.
    pub fn bus(&self) -> PathBuf {
        self.0.join(TASK_BUS)
    }

    /// `TASK.md`: the first iteration's prompt.
    pub fn task_md(&self) -> PathBuf {
        self.0.join("TASK.md")
    }

    /// `DONE`: the agent's signal that the task is done.
    pub fn done(&self) -> PathBuf {
        self.0.join("DONE")
    }

    /// The instance's fingerprint, as it completed.
    pub fn fingerprint(&self) -> PathBuf {
        self.0.join("fingerprint.json")
    }

    /// A merge node's report (docs/isolation.md, "Merge nodes").
    pub fn merge_report(&self) -> PathBuf {
        self.0.join("merge.json")
    }

    /// `unit.json`: what a unit run elsewhere is (docs/distributed.md).
    pub fn unit_spec(&self) -> PathBuf {
        self.0.join("unit.json")
    }

    /// `events.jsonl`: what a unit run elsewhere reports, a line each.
    pub fn unit_events(&self) -> PathBuf {
        self.0.join("events.jsonl")
    }

    /// `outcome.json`: how a unit run elsewhere ended, written last.
    pub fn unit_outcome(&self) -> PathBuf {
        self.0.join("outcome.json")
    }

    /// `job.json`: the executor's job running the unit (its id, its node).
    pub fn executor_job(&self) -> PathBuf {
        self.0.join("job.json")
    }

    /// The folder of its runs.
    pub fn runs(&self) -> PathBuf {
        self.0.join("runs")
    }

    pub fn run(&self, run_id: &str) -> RunDir {
        RunDir(self.runs().join(run_id))
    }

    /// Its run folders, in creation order (run ids lead with their
    /// sequence number, so names sort that way).
    pub fn run_dirs(&self) -> Vec<RunDir> {
        let mut runs: Vec<PathBuf> = std::fs::read_dir(self.runs())
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        runs.sort();
        runs.into_iter().map(RunDir).collect()
    }
}

impl AsRef<Path> for TaskDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// `<task>/runs/<run>`: one iteration's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir(PathBuf);

impl RunDir {
    /// A folder already known to be a run's.
    pub fn at(path: PathBuf) -> Self {
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `run-info.yaml`: the run's record.
    pub fn info(&self) -> PathBuf {
        self.0.join("run-info.yaml")
    }

    /// `prompt.md`: the preamble and prompt the agent was given.
    pub fn prompt(&self) -> PathBuf {
        self.0.join("prompt.md")
    }

    /// `output.md`: the final answer.
    pub fn output(&self) -> PathBuf {
        self.0.join("output.md")
    }

    pub fn stdout(&self) -> PathBuf {
        self.0.join("agent-stdout.txt")
    }

    pub fn stderr(&self) -> PathBuf {
        self.0.join("agent-stderr.txt")
    }

    /// `stop-command.txt`: what the `stop.command` check printed.
    pub fn stop_command(&self) -> PathBuf {
        self.0.join("stop-command.txt")
    }
}

impl AsRef<Path> for RunDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_seed_layout() {
        let project = ProjectDir::new(Path::new("/r"), "p");
        assert_eq!(project.bus(), Path::new("/r/p/PROJECT-MESSAGE-BUS.md"));
        let task = project.task("task-1");
        assert_eq!(task.bus(), Path::new("/r/p/task-1/TASK-MESSAGE-BUS.md"));
        assert_eq!(task.done(), Path::new("/r/p/task-1/DONE"));
        let run = task.run("0001-x");
        assert_eq!(
            run.info(),
            Path::new("/r/p/task-1/runs/0001-x/run-info.yaml")
        );
        assert_eq!(run.output(), Path::new("/r/p/task-1/runs/0001-x/output.md"));
        assert_eq!(
            run.stderr(),
            Path::new("/r/p/task-1/runs/0001-x/agent-stderr.txt")
        );
    }

    #[test]
    fn only_the_default_root_has_a_conductor_folder() {
        assert_eq!(
            conductor_dir_of(Path::new("/w/.conductor/runs")),
            Some(Path::new("/w/.conductor"))
        );
        assert_eq!(conductor_dir_of(Path::new("/w/runs")), None);
    }
}
