//! Owns `/metrics`: the run store in Prometheus' text format, from the
//! overview the page shows (one reading): applies by state, the latest
//! apply's instances by state per workflow, and what every apply under the
//! root has run and spent.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::read::blocking;
use super::state::Server;
use crate::view::report::Depth;

pub(super) async fn metrics(State(server): State<Arc<Server>>) -> Result<Response, ApiError> {
    let text = blocking(move || render(&server)).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// A label value, escaped as the text format asks.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render(server: &Server) -> Result<String, ApiError> {
    let mut applies: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut instances: Vec<(String, String, String, usize)> = Vec::new();
    let (mut iterations, mut failures, mut input, mut output, mut cost) =
        (0u64, 0u64, 0u64, 0u64, 0f64);
    for (project, list) in crate::view::applies::all(&server.options.root)? {
        let mut latest_seen = std::collections::HashSet::new();
        for apply in &list {
            let report = crate::view::report::build(apply, None, Depth::Records);
            *applies.entry(report.state.clone()).or_default() += 1;
            for r in &report.instances {
                iterations += u64::from(r.iterations);
                failures += u64::from(r.state == "failed");
                input += r.input_tokens;
                output += r.output_tokens;
                cost += r.cost_usd.unwrap_or(0.0);
            }
            // The newest apply of each workflow says where it stands.
            if latest_seen.insert(report.workflow.clone()) {
                let mut by_state: std::collections::BTreeMap<&str, usize> =
                    std::collections::BTreeMap::new();
                for r in &report.instances {
                    *by_state.entry(r.state.as_str()).or_default() += 1;
                }
                for (state, n) in by_state {
                    instances.push((
                        project.clone(),
                        report.workflow.clone(),
                        state.to_string(),
                        n,
                    ));
                }
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP conductor_applies Applies under the root, by state."
    );
    let _ = writeln!(out, "# TYPE conductor_applies gauge");
    for (state, n) in &applies {
        let _ = writeln!(out, "conductor_applies{{state=\"{}\"}} {n}", label(state));
    }
    let _ = writeln!(
        out,
        "# HELP conductor_instances The latest apply's instances of each workflow, by state."
    );
    let _ = writeln!(out, "# TYPE conductor_instances gauge");
    for (project, workflow, state, n) in &instances {
        let _ = writeln!(
            out,
            "conductor_instances{{project=\"{}\",workflow=\"{}\",state=\"{}\"}} {n}",
            label(project),
            label(workflow),
            label(state)
        );
    }
    let _ = writeln!(
        out,
        "# HELP conductor_iterations Iterations run by the instances that ended, over every apply."
    );
    let _ = writeln!(out, "# TYPE conductor_iterations gauge");
    let _ = writeln!(out, "conductor_iterations {iterations}");
    let _ = writeln!(
        out,
        "# HELP conductor_failures Instances that failed, over every apply."
    );
    let _ = writeln!(out, "# TYPE conductor_failures gauge");
    let _ = writeln!(out, "conductor_failures {failures}");
    let _ = writeln!(
        out,
        "# HELP conductor_tokens Tokens the ended instances used, over every apply."
    );
    let _ = writeln!(out, "# TYPE conductor_tokens gauge");
    let _ = writeln!(out, "conductor_tokens{{direction=\"input\"}} {input}");
    let _ = writeln!(out, "conductor_tokens{{direction=\"output\"}} {output}");
    let _ = writeln!(
        out,
        "# HELP conductor_cost_usd What the ended instances cost, over every apply, in US dollars."
    );
    let _ = writeln!(out, "# TYPE conductor_cost_usd gauge");
    let _ = writeln!(out, "conductor_cost_usd {cost}");
    Ok(out)
}
