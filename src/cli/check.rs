//! `conductor validate` and `conductor plan`: load, print.

use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use super::args::{PlanArgs, PlanExecutor, ValidateArgs};
use super::render::{self, JsonDiagnostic};
use crate::exit_code;
use crate::load::{LoadOptions, load};
use crate::plan;

#[derive(Debug, Serialize)]
struct FileResult {
    file: String,
    valid: bool,
    nodes: Option<usize>,
    instances: Option<usize>,
    diagnostics: Vec<JsonDiagnostic>,
}

pub(super) fn validate(args: &ValidateArgs) -> u8 {
    let mut results = Vec::new();
    let mut failed = 0;
    for file in &args.files {
        let c = load(file, &args.sets, LoadOptions::default());
        let (diags, plan) = (&c.diagnostics, &c.plan);
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
        render::print_all(diags, &c.sources);
        let mut err = std::io::stderr().lock();
        match (plan, &c.program) {
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

pub(super) fn plan(args: &PlanArgs) -> u8 {
    let c = load(
        &args.file,
        &args.sets,
        LoadOptions {
            root: args.root.as_deref(),
            show_prompts: args.show_prompts,
        },
    );
    render::print_all(&c.diagnostics, &c.sources);
    let Some(plan) = c.plan.as_ref() else {
        return exit_code::INVALID;
    };
    let slurm = c.program.as_ref().filter(|p| {
        args.executor.map_or(
            p.executor_kind() == crate::model::ExecutorKind::Slurm,
            |k| k == PlanExecutor::Slurm,
        )
    });
    match (&args.manifests, args.executor) {
        (Some(dir), Some(PlanExecutor::Kubernetes)) => {
            let Some(program) = c.program.as_ref() else {
                return exit_code::INVALID;
            };
            return manifests(program, plan, args, dir);
        }
        (Some(_), _) | (None, Some(PlanExecutor::Kubernetes)) => {
            eprintln!(
                "error: Kubernetes Jobs are written as manifests: `--executor kubernetes --manifests DIR --image IMAGE`"
            );
            return exit_code::INVALID;
        }
        _ => {}
    }
    let submissions = slurm.map(|p| crate::runner::submissions(p, plan, &args.sbatch_args));
    let text = if args.json {
        let text = plan::json::to_json(plan);
        match &submissions {
            Some(subs) => with_submissions(&text, subs),
            None => text,
        }
    } else if args.dot {
        plan::dot::to_dot(plan)
    } else {
        let Some(program) = c.program.as_ref() else {
            return exit_code::INVALID;
        };
        match crate::runner::prepare::freshness(program, plan, args.root.as_deref()) {
            Ok(states) => {
                let current = states
                    .values()
                    .filter(|s| **s == crate::incremental::freshness::Freshness::UpToDate)
                    .count();
                let words = states.iter().map(|(k, s)| (k.clone(), s.text())).collect();
                let mut text = plan::text::to_text_with(plan, &words);
                let _ = writeln!(
                    text,
                    "up to date: {current} of {} (apply runs the others)",
                    count(states.len(), "instance")
                );
                text
            }
            Err(e) => {
                eprintln!("warning: cannot tell what is up to date: {e}");
                plan::text::to_text(plan)
            }
        }
    };
    let mut text = text;
    if let Some(subs) = submissions.filter(|_| !args.json && !args.dot) {
        let _ = writeln!(
            text,
            "\nwith --executor slurm, each instance's loop is a Slurm job, submitted as:"
        );
        for (key, words) in subs {
            let _ = writeln!(text, "  {key}\n    {}", crate::runner::shell_line(&words));
        }
    }
    let _ = std::io::stdout().write_all(text.as_bytes());
    exit_code::OK
}

/// Writes a Job manifest per agent instance to `dir`.
fn manifests(
    program: &crate::compile::Program,
    plan: &plan::Plan,
    args: &PlanArgs,
    dir: &std::path::Path,
) -> u8 {
    let root = crate::store::layout::runs_root(args.root.as_deref(), program.declared_root());
    let cluster = crate::runner::Cluster {
        image: args.image.clone().unwrap_or_default(),
        namespace: args.namespace.clone(),
        claim: args.volume_claim.clone(),
        secret: args.keys_secret.clone(),
        root: std::path::absolute(&root).unwrap_or(root),
        grace: args.grace,
    };
    let jobs = crate::runner::kubernetes_jobs(program, plan, &cluster);
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return exit_code::ENVIRONMENT;
    }
    for (name, job) in &jobs {
        let path = dir.join(name);
        let written = serde_saphyr::to_string(job)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(&path, text));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return exit_code::ENVIRONMENT;
        }
    }
    println!(
        "wrote {} to {} (not yet run against a cluster: docs/distributed.md)",
        count(jobs.len(), "Job manifest"),
        dir.display()
    );
    exit_code::OK
}

/// The JSON plan with `submissions`: each instance's `sbatch` command.
fn with_submissions(json: &str, subs: &[(String, Vec<String>)]) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json) else {
        return json.to_string();
    };
    if let Some(o) = value.as_object_mut() {
        o.insert(
            "submissions".into(),
            subs.iter()
                .map(|(k, line)| serde_json::json!({ "instance": k, "sbatch": line }))
                .collect(),
        );
    }
    serde_json::to_string_pretty(&value).map_or_else(|_| json.to_string(), |t| t + "\n")
}

/// "1 node", "3 nodes".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
