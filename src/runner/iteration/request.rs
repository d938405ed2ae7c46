//! Owns what one iteration is asked to run: the job and agent, the task
//! folder and run id, the prompt, and its limits.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::agents::spec::AgentSpec;
use crate::runner::job::Job;
use crate::store::layout::TaskDir;

/// Everything one iteration needs.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub job: &'a Job,
    pub agent: &'a AgentSpec,
    pub task_id: &'a str,
    pub task: &'a TaskDir,
    pub run_id: &'a str,
    /// The agent's program as an earlier iteration found it.
    pub program: Option<&'a Path>,
    pub iteration: u32,
    pub previous_run: Option<&'a str>,
    /// The prompt.md text (preamble and prompt).
    pub prompt: &'a str,
    pub timeout: Duration,
    pub idle_timeout: Option<Duration>,
    /// When the node's deadline passes, if it has one.
    pub deadline: Option<Instant>,
    /// Fired when a watch's re-plan invalidates the instance.
    pub cancel: &'a tokio_util::sync::CancellationToken,
    /// Fired when a person stops the instance.
    pub stopped: &'a tokio_util::sync::CancellationToken,
}
