//! Owns `job.json` in a task folder: the executor's job that runs (or
//! ran) the instance's loop elsewhere, and the node it runs on
//! (docs/distributed.md).

use serde::{Deserialize, Serialize};

use super::layout::TaskDir;

/// A job of an executor running an instance's loop.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecutorJob {
    /// `slurm`.
    pub executor: String,
    pub job_id: String,
    /// The node it runs on, once it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl ExecutorJob {
    /// The job of `task`, when an executor ran it.
    pub fn read(task: &TaskDir) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(task.executor_job()).ok()?).ok()
    }

    pub fn write(&self, task: &TaskDir) -> std::io::Result<()> {
        let text = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        super::write_atomic(&task.executor_job(), &text)
    }

    /// `slurm job 12`.
    pub fn label(&self) -> String {
        format!("{} job {}", self.executor, self.job_id)
    }
}
