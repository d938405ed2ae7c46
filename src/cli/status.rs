//! `conductor status [--json]`: the latest apply's instances with their
//! state, iterations and stop reason, read from the project bus (and, for
//! running instances, the number of run folders in their task).

use std::io::Write;

use serde::Serialize;

use super::applies::{Apply, latest};
use super::args::StatusArgs;
use crate::exit_code;
use crate::report::printable;
use crate::store::layout::ProjectDir;

#[derive(Debug, Serialize)]
struct Row {
    instance: String,
    node: String,
    state: String,
    iterations: u32,
    stop_reason: String,
    /// For an up-to-date instance, why the run that made its result ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    result_stop_reason: Option<String>,
    task_id: String,
}

#[derive(Debug, Serialize)]
struct Report {
    workflow: String,
    apply_id: String,
    started: String,
    state: String,
    instances: Vec<Row>,
}

pub(super) fn status(args: &StatusArgs) -> u8 {
    let apply = match latest(&args.location, None) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            return exit_code::ENVIRONMENT;
        }
    };
    let which = apply.which();
    if !which.is_empty() && !args.json {
        let _ = writeln!(std::io::stderr(), "{which}");
    }
    let report = build(&apply);
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return exit_code::OK;
    }
    let _ = writeln!(
        out,
        "{} ({}, started {}): {}",
        printable(&report.workflow),
        report.apply_id,
        report.started,
        report.state
    );
    let width = report
        .instances
        .iter()
        .map(|r| r.instance.chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    let _ = writeln!(
        out,
        "{:<width$}  {:<8}  {:>5}  stop reason",
        "instance", "state", "iter"
    );
    for r in &report.instances {
        // An up-to-date result says how it was made.
        let reason = match &r.result_stop_reason {
            Some(made) => format!("{made} (up to date)"),
            None => r.stop_reason.clone(),
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<8}  {:>5}  {}",
            printable(&r.instance),
            r.state,
            r.iterations,
            printable(&reason)
        );
    }
    exit_code::OK
}

fn build(apply: &Apply) -> Report {
    let mut rows: Vec<Row> = Vec::new();
    for m in &apply.records {
        let instance = m.meta.get("instance").cloned().unwrap_or_default();
        let at = match rows.iter().position(|r| r.instance == instance) {
            Some(i) => i,
            None => {
                rows.push(Row {
                    instance: instance.clone(),
                    node: m.meta.get("node").cloned().unwrap_or_default(),
                    state: "running".into(),
                    iterations: 0,
                    stop_reason: String::new(),
                    result_stop_reason: None,
                    task_id: m.task_id.clone(),
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[at];
        if !m.task_id.is_empty() {
            row.task_id.clone_from(&m.task_id);
        }
        if m.kind != "NODE_START" {
            row.state = m.meta.get("status").cloned().unwrap_or_default();
            row.stop_reason = m.meta.get("stop_reason").cloned().unwrap_or_default();
            row.result_stop_reason = m.meta.get("result_stop_reason").cloned();
            row.iterations = m
                .meta
                .get("iterations")
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
        }
    }
    let abandoned = apply.abandoned();
    for row in rows.iter_mut().filter(|r| r.state == "running") {
        let task = ProjectDir::at(apply.project_dir.clone()).task(&row.task_id);
        row.iterations = u32::try_from(task.run_dirs().len()).unwrap_or(u32::MAX);
        if abandoned {
            row.state = "stale".into();
            row.stop_reason = "conductor is no longer running".into();
        }
    }
    let state = match &apply.stop {
        Some(s) => s.meta.get("status").cloned().unwrap_or_default(),
        None if abandoned => "stale (conductor is no longer running)".into(),
        None => "running".into(),
    };
    Report {
        workflow: apply
            .start
            .meta
            .get("workflow")
            .cloned()
            .unwrap_or_default(),
        apply_id: apply.apply_id().to_string(),
        started: apply.start.ts.clone(),
        state,
        instances: rows,
    }
}
