//! `conductor validate` and `conductor plan`: compile, plan, print.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::args::{PlanArgs, ValidateArgs};
use super::render::{self, JsonDiagnostic};
use crate::compile::{Compilation, compile};
use crate::diagnostic::Diagnostic;
use crate::exit_code;
use crate::plan::{self, Plan, PlanOptions};

/// Compiles and plans one file; all diagnostics of both stages.
fn check(
    file: &Path,
    sets: &[String],
    show_prompts: bool,
    root: Option<&Path>,
) -> (Compilation, Vec<Diagnostic>, Option<Plan>) {
    let mut c = compile(file, sets);
    let mut diags: Vec<Diagnostic> = std::mem::take(&mut c.diagnostics).into_vec();
    let plan = c.program.as_ref().map(|program| {
        let options = PlanOptions {
            show_prompts,
            runs_root: Some(crate::runner::runs_root(program, root)),
        };
        let (plan, more) = plan::plan(program, &mut c.sources, options);
        diags.extend(more.into_vec());
        plan
    });
    let has_errors = diags.iter().any(Diagnostic::is_error);
    (c, diags, plan.filter(|_| !has_errors))
}

#[derive(Debug, Serialize)]
struct FileResult {
    file: String,
    valid: bool,
    nodes: Option<usize>,
    instances: Option<usize>,
    diagnostics: Vec<JsonDiagnostic>,
}

pub fn validate(args: &ValidateArgs) -> u8 {
    let mut results = Vec::new();
    let mut failed = 0;
    for file in &args.files {
        let (c, diags, plan) = check(file, &args.sets, false, None);
        let valid = plan.is_some();
        if !valid {
            failed += 1;
        }
        if args.json {
            results.push(FileResult {
                file: file.display().to_string(),
                valid,
                nodes: c.program.as_ref().map(|p| p.nodes.len()),
                instances: plan.as_ref().map(|p| p.instances.len()),
                diagnostics: diags
                    .iter()
                    .map(|d| render::to_json(d, &c.sources))
                    .collect(),
            });
            continue;
        }
        render::print_all(&diags, &c.sources);
        let mut err = std::io::stderr().lock();
        match (&plan, &c.program) {
            (Some(plan), Some(program)) => {
                let _ = writeln!(
                    err,
                    "{}: valid ({}, {})",
                    file.display(),
                    count(program.nodes.len(), "node"),
                    count(plan.instances.len(), "instance")
                );
            }
            _ => {
                let n = diags.iter().filter(|d| d.is_error()).count();
                let _ = writeln!(
                    err,
                    "{}: {n} {}",
                    file.display(),
                    if n == 1 { "error" } else { "errors" }
                );
            }
        }
    }
    if args.json {
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
    }
    if failed > 0 {
        exit_code::INVALID
    } else {
        exit_code::OK
    }
}

pub fn plan(args: &PlanArgs) -> u8 {
    let (c, diags, plan) = check(
        &args.file,
        &args.sets,
        args.show_prompts,
        args.root.as_deref(),
    );
    render::print_all(&diags, &c.sources);
    let Some(plan) = plan else {
        return exit_code::INVALID;
    };
    let text = if args.json {
        plan::json::to_json(&plan)
    } else if args.dot {
        plan::dot::to_dot(&plan)
    } else {
        let Some(program) = c.program.as_ref() else {
            return exit_code::INVALID;
        };
        match crate::runner::prepare::freshness(program, &plan, args.root.as_deref()) {
            Ok(states) => {
                let current = states
                    .values()
                    .filter(|s| **s == crate::incremental::freshness::Freshness::UpToDate)
                    .count();
                let words = states.iter().map(|(k, s)| (k.clone(), s.text())).collect();
                let mut text = plan::text::to_text_with(&plan, &words);
                let _ = writeln!(
                    text,
                    "up to date: {current} of {} (apply runs the others)",
                    count(states.len(), "instance")
                );
                text
            }
            Err(e) => {
                eprintln!("warning: cannot tell what is up to date: {e}");
                plan::text::to_text(&plan)
            }
        }
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    exit_code::OK
}

/// "1 node", "3 nodes".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
