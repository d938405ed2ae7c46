//! Owns reading back where an instance's loop stood from its task folder
//! (docs/watch.md): the run folders already there (so new runs get the next
//! numbers and never overwrite one), and for an interrupted instance the
//! iterations it completed, what they cost, and the last answer, which
//! becomes `previous`. The interrupted run itself does not count. Runs of
//! an earlier attempt (before the last run numbered iteration 1) are not
//! part of the loop being resumed.

use crate::agents::answer::read_capped;
use crate::agents::usage::Usage;
use crate::stop_reason::StopReason;
use crate::store::RunInfo;
use crate::store::layout::{RunDir, TaskDir};

/// The completed iterations of the attempt being resumed.
#[derive(Debug, Default)]
pub(crate) struct Resumed {
    /// Iterations completed (the next one is this plus one).
    pub iterations: u32,
    pub usage: Usage,
    /// The last completed run, which becomes `previous`.
    pub last: Option<LastRun>,
}

/// The last completed run of the attempt being resumed.
#[derive(Debug)]
pub(crate) struct LastRun {
    pub run_id: String,
    /// Its answer, capped.
    pub answer: String,
    pub exit_code: i32,
    /// Its stop reason as recorded (`None` when it records none conductor knows).
    pub stop_reason: Option<StopReason>,
}

/// How many run folders the task has already.
pub(crate) fn existing_runs(task: &TaskDir) -> u32 {
    std::fs::read_dir(task.runs()).map_or(0, |rd| {
        u32::try_from(rd.filter_map(Result::ok).count()).unwrap_or(u32::MAX)
    })
}

/// Reads the task folder's runs, oldest first.
pub(crate) fn read(task: &TaskDir) -> Resumed {
    let infos: Vec<(RunDir, RunInfo)> = task
        .run_dirs()
        .into_iter()
        .filter_map(|run| RunInfo::read(&run.info()).ok().map(|i| (run, i)))
        .collect();
    let attempt = infos
        .iter()
        .rposition(|(_, i)| i.iteration == Some(1))
        .unwrap_or(0);
    let mut out = Resumed::default();
    for (dir, info) in &infos[attempt..] {
        let reason = info.stop_reason.as_deref().and_then(StopReason::parse);
        if info.status == "running" || reason.as_ref().is_some_and(StopReason::is_interruption) {
            break;
        }
        out.iterations = info.iteration.unwrap_or(out.iterations + 1);
        out.usage.add(Usage {
            input_tokens: info.input_tokens.unwrap_or(0),
            output_tokens: info.output_tokens.unwrap_or(0),
            cost_usd: info.cost_usd.unwrap_or(0.0),
        });
        let answer = read_capped(&dir.output());
        out.last = Some(LastRun {
            run_id: info.run_id.clone(),
            answer,
            exit_code: i32::try_from(info.exit_code).unwrap_or(-1),
            stop_reason: reason,
        });
    }
    out
}
