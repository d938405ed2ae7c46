//! An apply's plan, made again from its workflow file with the params it
//! ran with (its `WORKFLOW_START` record keeps them as `--set`s), so that a
//! reader of the run store sees the instances it has not started and what
//! each needs. A workflow edited since plans what it is now.

use std::path::Path;

use crate::bus::Message;
use crate::plan::Plan;

/// The plan of the apply `start` began, from `file`; none when the file
/// no longer plans (it was removed, or is not valid now).
pub(crate) fn of(file: &Path, start: &Message) -> Option<Plan> {
    let sets: Vec<String> = start
        .meta
        .get("sets")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let options = crate::load::LoadOptions::default();
    crate::load::load(file, &sets, options)
        .into_loaded()
        .map(|l| l.plan)
}
