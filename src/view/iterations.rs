//! One row per iteration of an instance, from its task folder's run
//! records: when it ran, how it exited, which condition finished the node
//! or why none did, and what it used.

use serde::Serialize;

use crate::store::NOT_ENDED;
use crate::store::layout::TaskDir;

/// One iteration (one run) of an instance.
#[expect(
    clippy::struct_field_names,
    reason = "the API's field names, as docs/api.md gives them"
)]
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(crate) struct Iteration {
    pub run_id: String,
    pub iteration: u32,
    pub agent: String,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Its duration; a running one's so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The condition that held when it finished the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// What was seen when no condition held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// The iterations of the instance whose task folder is `task`, in order.
pub(crate) fn of(task: &TaskDir) -> Vec<Iteration> {
    let now = crate::clock::now();
    let mut rows = Vec::new();
    for (n, run) in task.run_dirs().into_iter().enumerate() {
        let Ok(info) = crate::store::RunInfo::read(&run.info()) else {
            continue;
        };
        let start = info.start_time.parse::<jiff::Timestamp>().ok();
        let ended =
            (info.end_time != NOT_ENDED && info.status != "running").then(|| info.end_time.clone());
        let end_at = ended
            .as_deref()
            .and_then(|e| e.parse::<jiff::Timestamp>().ok())
            .unwrap_or(now);
        let duration_ms =
            start.and_then(|s| u64::try_from(end_at.duration_since(s).as_millis()).ok());
        let running = info.status == "running";
        rows.push(Iteration {
            run_id: info.run_id,
            iteration: info
                .iteration
                .unwrap_or_else(|| u32::try_from(n + 1).unwrap_or(u32::MAX)),
            agent: info.agent,
            start: info.start_time,
            end: ended,
            duration_ms,
            exit_code: (!running).then_some(info.exit_code),
            // What an iteration that did not finish the node saw is its why.
            stop_reason: info
                .stop_reason
                .filter(|s| !s.is_empty() && s != "not_done" && info.why.is_none()),
            why: info.why,
            input_tokens: info.input_tokens,
            output_tokens: info.output_tokens,
            cost_usd: info.cost_usd,
            status: info.status,
        });
    }
    rows
}
