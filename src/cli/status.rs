//! `conductor status [--json]`: the latest apply's instances with their
//! state, iterations and stop reason, read from the project bus; and from
//! each instance's run records, what it has cost and why its last
//! iteration did not finish it, and for a running one how long its
//! iteration has run and its latest tool call (docs/run-store.md).

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
    /// What its runs cost, as their agents reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_usd: Option<f64>,
    /// Why its last iteration did not finish it (docs/console.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
    /// A running one: how long its iteration has run, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    running_ms: Option<u64>,
    /// A running one: its agent's latest tool call.
    #[serde(skip_serializing_if = "Option::is_none")]
    activity: Option<String>,
    /// One not started yet: the instances it needs that are not done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    waiting_for: Vec<String>,
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
    let mut report = build(&apply);
    if let Some(file) = &args.location.workflow
        && report.state == "running"
    {
        not_started(file, &apply, &mut report.instances);
    }
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
    let _ = writeln!(out, "{}", totals(&report.instances));
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
        // What goes on, or why the last iteration did not finish it.
        let mut detail = Vec::new();
        if let Some(ms) = r.running_ms {
            detail.push(format!(
                "iteration {} running for {}s",
                r.iterations,
                ms / 1000
            ));
        }
        if let Some(c) = r.cost_usd {
            detail.push(format!("${c:.2}"));
        }
        if let Some(a) = &r.activity {
            detail.push(a.clone());
        }
        if let Some(w) = &r.why {
            detail.push(format!("last iteration: {w}"));
        }
        if !r.waiting_for.is_empty() {
            detail.push(format!("waiting for {}", r.waiting_for.join(", ")));
        }
        if !detail.is_empty() && r.result_stop_reason.is_none() {
            let _ = writeln!(out, "{:<width$}    {}", "", printable(&detail.join(" · ")));
        }
    }
    exit_code::OK
}

/// `done 3/10 · running 1 · failed 1 · $0.42`: the instances by state, as
/// the console's header counts them, and what their runs cost.
fn totals(rows: &[Row]) -> String {
    let count = |state: &str| rows.iter().filter(|r| r.state == state).count();
    let mut parts = vec![format!("done {}/{}", count("done"), rows.len())];
    for state in ["running", "queued", "waiting", "failed", "skipped", "stale"] {
        let n = count(state);
        if n > 0 {
            parts.push(format!("{state} {n}"));
        }
    }
    let cost: f64 = rows.iter().filter_map(|r| r.cost_usd).sum();
    if cost > 0.0 {
        parts.push(format!("${cost:.2}"));
    }
    parts.join(" · ")
}

/// The instances of a running apply that have not started, from its plan
/// (the workflow planned again with the params it runs with): queued when
/// what they need is done (they wait for a slot), else waiting, with what
/// for. A workflow edited since plans what it is now.
fn not_started(file: &std::path::Path, apply: &Apply, rows: &mut Vec<Row>) {
    let sets: Vec<String> = apply
        .start
        .meta
        .get("sets")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let options = crate::load::LoadOptions::default();
    let Some(loaded) = crate::load::load(file, &sets, options).into_loaded() else {
        return;
    };
    let done =
        |rows: &[Row], key: &str| rows.iter().any(|r| r.instance == key && r.state == "done");
    let mut more = Vec::new();
    for inst in &loaded.plan.instances {
        let key = &*inst.key;
        // A run-time fan-out shows as its instances once it expanded.
        let expanded = key.ends_with("[*]")
            && rows
                .iter()
                .any(|r| r.instance.starts_with(key.trim_end_matches("*]")));
        if expanded || rows.iter().any(|r| r.instance == key) {
            continue;
        }
        let waiting_for: Vec<String> = inst
            .needs
            .iter()
            .filter(|n| !done(rows, n))
            .map(ToString::to_string)
            .collect();
        more.push(Row {
            instance: key.to_string(),
            node: inst.node.to_string(),
            state: if waiting_for.is_empty() {
                "queued"
            } else {
                "waiting"
            }
            .to_string(),
            iterations: 0,
            stop_reason: String::new(),
            result_stop_reason: None,
            task_id: String::new(),
            cost_usd: None,
            why: None,
            running_ms: None,
            activity: None,
            waiting_for,
        });
    }
    rows.extend(more);
}

/// What an instance's run records add to its row: cost, the last why, and
/// for a running iteration its age and latest tool call.
fn runs_of(task: &crate::store::layout::TaskDir, row: &mut Row) {
    let mut cost = 0.0;
    let mut why = None;
    let mut last = None;
    for run in task.run_dirs() {
        let Ok(info) = crate::store::RunInfo::read(&run.info()) else {
            continue;
        };
        cost += info.cost_usd.unwrap_or(0.0);
        if info.status != "running" {
            why.clone_from(&info.why);
        }
        last = Some((run, info));
    }
    row.cost_usd = (cost > 0.0).then_some(cost);
    row.why = why;
    let Some((run, info)) = last.filter(|(_, i)| i.status == "running") else {
        return;
    };
    row.running_ms = info
        .start_time
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| u64::try_from(crate::clock::now().duration_since(t).as_millis()).ok());
    row.activity = crate::model::AgentKind::parse(&info.agent)
        .and_then(|k| crate::agents::activity::latest(k, &run.stdout()));
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
                    cost_usd: None,
                    why: None,
                    running_ms: None,
                    activity: None,
                    waiting_for: Vec::new(),
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
    for row in rows.iter_mut().filter(|r| !r.task_id.is_empty()) {
        runs_of(
            &ProjectDir::at(apply.project_dir.clone()).task(&row.task_id),
            row,
        );
    }
    let abandoned = apply.abandoned();
    for row in rows.iter_mut().filter(|r| r.state == "running") {
        let task = ProjectDir::at(apply.project_dir.clone()).task(&row.task_id);
        row.iterations = u32::try_from(task.run_dirs().len()).unwrap_or(u32::MAX);
        if abandoned {
            row.state = "stale".into();
            row.stop_reason = "conductor is no longer running".into();
            // Its last run-info still says running; nothing runs.
            row.running_ms = None;
            row.activity = None;
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
