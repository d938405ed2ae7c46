//! `conductor status [--json]`: the latest apply's instances with their
//! state, iterations and stop reason, read from the project bus; and from
//! each instance's run records, what it has cost and why its last
//! iteration did not finish it, and for a running one how long its
//! iteration has run and its latest tool call (docs/run-store.md).

use std::io::Write;

use super::args::StatusArgs;
use crate::exit_code;
use crate::report::printable;
use crate::view::applies::latest;
use crate::view::report::{Depth, Instance, build};

pub(super) fn status(args: &StatusArgs) -> u8 {
    let apply = match latest(
        args.location.root.as_deref(),
        args.location.workflow.as_deref(),
        None,
    ) {
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
    // The plan shows what a running apply has not started yet.
    let plan = args
        .location
        .workflow
        .as_deref()
        .and_then(|file| crate::view::plan::of(file, &apply.start));
    let report = build(&apply, plan.as_ref(), Depth::Runs);
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
        if report.state == "stale" {
            "stale (conductor is no longer running)"
        } else {
            &report.state
        }
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
        if let Some(b) = &r.branch {
            match &r.changed {
                Some(c) => detail.push(format!("branch {b} ({c})")),
                None => detail.push(format!("branch {b}")),
            }
        }
        if let Some(j) = &r.job {
            match &r.worker {
                Some(w) => detail.push(format!("{j} on {w}")),
                None => detail.push(j.clone()),
            }
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
fn totals(rows: &[Instance]) -> String {
    let count = |state: &str| rows.iter().filter(|r| r.state == state).count();
    let mut parts = vec![format!("done {}/{}", count("done"), rows.len())];
    for state in [
        "running", "queued", "waiting", "pending", "failed", "skipped", "stale",
    ] {
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
