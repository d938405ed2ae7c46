//! Owns the question the Ralph loop asks after every iteration: is the node
//! done? It evaluates the success conditions in force
//! (docs/workflow-format.md, `stop`): any of
//! them by default, every one with `all = true`; cheap checks first, the
//! `command` check only when its answer still matters.

use std::path::Path;

use minijinja::Value;

use super::context::Shared;
use super::job::StopSpec;
use crate::process::shell::{self, Output};

/// What the iteration produced, as the conditions see it.
#[derive(Debug)]
pub struct Evidence<'a> {
    pub task_dir: &'a Path,
    pub workdir: &'a Path,
    pub answer: &'a str,
    pub exit_code: i32,
    pub agent_failed: bool,
    /// Variables for `expr`: `output`, `json`, `iteration`, `exit_code`, `item`, `params`..
    pub context: Value,
    pub env: &'a [(String, String)],
}

/// Which condition held, or why none did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Done(&'static str),
    NotDone,
    /// A condition could not be evaluated (an `expr` error): the iteration fails.
    Error(String),
}

/// Evaluates `stop` against `ev`.
pub async fn evaluate(
    stop: &StopSpec,
    env: &minijinja::Environment<'static>,
    ev: &Evidence<'_>,
    shared: &Shared,
) -> Verdict {
    let mut checks: Vec<(&'static str, Result<bool, String>)> = Vec::new();
    let settled = |checks: &Vec<(&'static str, Result<bool, String>)>| {
        let held = checks.iter().any(|(_, r)| matches!(r, Ok(true)));
        let failed = checks.iter().any(|(_, r)| !matches!(r, Ok(true)));
        if stop.all { failed } else { held }
    };
    if stop.done_file {
        checks.push(("done_file", Ok(ev.task_dir.join("DONE").exists())));
    }
    if let Some(p) = &stop.promise {
        checks.push(("promise", Ok(ev.answer.contains(p.as_str()))));
    }
    if let Some(r) = &stop.output_matches {
        checks.push(("output_matches", Ok(r.is_match(ev.answer))));
    }
    if stop.exit_zero {
        checks.push(("exit_zero", Ok(ev.exit_code == 0 && !ev.agent_failed)));
    }
    if let Some(e) = &stop.expr
        && !settled(&checks)
    {
        let result = env
            .compile_expression(e)
            .and_then(|x| x.eval(ev.context.clone()))
            .map(|v| v.is_true())
            .map_err(|err| format!("stop expr `{e}`: {err}"));
        checks.push(("expr", result));
    }
    if let Some(c) = &stop.command
        && !settled(&checks)
    {
        checks.push((
            "command",
            shell::run(
                c,
                ev.workdir,
                ev.env,
                Output::Discard,
                Some(stop.timeout),
                &shared.supervisor,
            )
            .await
            .map(|code| code == 0)
            .map_err(|e| e.to_string()),
        ));
    }
    if let Some((_, Err(e))) = checks.iter().find(|(_, r)| r.is_err()) {
        return Verdict::Error(e.clone());
    }
    let done = if stop.all {
        checks.iter().all(|(_, r)| matches!(r, Ok(true)))
    } else {
        checks.iter().any(|(_, r)| matches!(r, Ok(true)))
    };
    match checks.iter().find(|(_, r)| matches!(r, Ok(true))) {
        Some((name, _)) if done => Verdict::Done(if stop.all && checks.len() > 1 {
            "all"
        } else {
            name
        }),
        _ => Verdict::NotDone,
    }
}
