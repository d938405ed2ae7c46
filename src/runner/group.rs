//! Owns the verdict on a sub-workflow node once its inner instances have
//! ended (docs/workflow-format.md, "Sub-workflows"): its `[success]` commands must pass, and with a
//! `stop`, its success conditions must hold over the inner result (without
//! any written, the inner result must be done). A `not_done` round makes
//! the dispatcher run the inner instances again, up to `max_iterations`.

use std::path::Path;
use std::sync::Arc;

use minijinja::context;

use super::context::Shared;
use super::job::StopSpec;
use super::outcome::{Outcome, Status};
use super::success::{Evidence, Judged, evaluate};
use super::success_commands::run_success;
use crate::stop_reason::StopReason;
use crate::store::layout::TaskDir;

/// Judges one round of a sub-workflow.
pub(super) async fn judge(
    shared: Arc<Shared>,
    commands: Vec<String>,
    workdir: &Path,
    stop: Option<Arc<StopSpec>>,
    result: Option<Arc<Outcome>>,
    round: u32,
) -> Outcome {
    let started = std::time::Instant::now();
    let answer = result
        .as_ref()
        .map(|r| r.output.clone())
        .unwrap_or_default();
    let ended = |status, reason: StopReason, error: Option<String>| {
        let mut out = Outcome::ended(status, reason);
        out.output.clone_from(&answer);
        out.error = error;
        out.iterations = round;
        out.duration = started.elapsed();
        if let Some(r) = &result {
            out.json.clone_from(&r.json);
            out.usage = r.usage;
        }
        out
    };
    for c in &commands {
        let (code, tail) = match run_success(c, workdir, &shared).await {
            Ok(checked) => (checked.code, checked.tail),
            Err(e) => {
                let reason = if stop.is_some() {
                    StopReason::NotDone
                } else {
                    StopReason::SuccessFailed
                };
                return ended(Status::Failed, reason, Some(e.to_string()));
            }
        };
        if code != 0 {
            let reason = if stop.is_some() {
                StopReason::NotDone
            } else {
                StopReason::SuccessFailed
            };
            let last = tail
                .lines()
                .last()
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            return ended(
                Status::Failed,
                reason,
                Some(format!("`{c}` exited {code}{last}")),
            );
        }
    }
    let answer = result
        .as_ref()
        .map(|r| r.output.clone())
        .unwrap_or_default();
    let result_done = result.as_ref().is_some_and(|r| r.status == Status::Done);
    let Some(stop) = stop else {
        return ended(Status::Done, StopReason::SuccessCommands, None);
    };
    if !stop.has_success() {
        return if result_done {
            ended(Status::Done, StopReason::Done, None)
        } else {
            ended(Status::Failed, StopReason::NotDone, None)
        };
    }
    let done_file = TaskDir::at(
        result
            .as_ref()
            .and_then(|r| r.task_dir.clone())
            .unwrap_or_else(|| workdir.to_path_buf()),
    )
    .done();
    // A round has no run folder: the check's output, read for its last
    // lines, goes to a file of its own that is gone after.
    let output = tempfile::NamedTempFile::new().ok();
    let output_path = output.as_ref().map_or_else(
        || std::path::PathBuf::from("/dev/null"),
        |f| f.path().to_path_buf(),
    );
    let ev = Evidence {
        done_file: &done_file,
        workdir,
        answer: &answer,
        exit_code: result
            .as_ref()
            .and_then(|r| r.exit_code)
            .unwrap_or(i32::from(!result_done)),
        agent_failed: !result_done,
        context: context! {
            output => answer.as_str(),
            json => result.as_ref().and_then(|r| r.json.as_ref()).map(crate::prompt::context),
            status => result.as_ref().map(|r| r.status.as_str()),
            iteration => round,
        },
        env: &shared.base_env,
        command_output: &output_path,
        redact: shared.redactor.pairs(),
    };
    let templates = &shared.program.scopes[0].templates;
    match evaluate(&stop, templates, &ev, &shared).await {
        Ok(Judged::Done(reason)) => ended(Status::Done, reason, None),
        Ok(Judged::NotDone(why)) => {
            ended(Status::Failed, StopReason::NotDone, Some(why.to_string()))
        }
        Err(e) => ended(Status::Failed, StopReason::StopError, Some(e.to_string())),
    }
}
