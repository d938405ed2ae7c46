//! Owns what one run left behind: its folder and record, how it ended
//! (its exit code, the limit that cut it, what the agent reported), its
//! final answer and what it used.

use std::path::PathBuf;
use std::time::Duration;

use super::limits::Cut;
use crate::agents::usage::Usage;
use crate::store::RunInfo;
use crate::store::layout::RunDir;

/// What one run left behind.
#[derive(Debug)]
pub(crate) struct Ran {
    pub run_id: String,
    pub run: RunDir,
    pub exit_code: i32,
    pub cut: Option<Cut>,
    /// The agent reported failure in its stream (claude's `is_error`, codex's `turn.failed`).
    pub reported_failure: bool,
    /// What the agent's stream said went wrong.
    pub reported_error: Option<String>,
    /// The final answer, capped for templates.
    pub answer: String,
    pub usage: Usage,
    pub duration: Duration,
    /// The run's record as written when it started; this run owns it.
    pub info: RunInfo,
    /// Where the agent's program was found.
    pub program: PathBuf,
}
