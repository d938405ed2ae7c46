//! Owns the question the Ralph loop asks after every iteration: is the node
//! done? It evaluates the success conditions in force
//! (docs/workflow-format.md, `stop`): any of them by default, every one
//! with `all = true`; cheap checks first, the `command` check only when its
//! answer still matters.

use std::path::Path;

use minijinja::Value;

use super::context::Shared;
use super::job::StopSpec;
use crate::process::shell::{self, Output, ShellError};
use crate::stop_reason::{Condition, StopReason};

/// What the iteration produced, as the conditions see it.
#[derive(Debug)]
pub(super) struct Evidence<'a> {
    /// The task's `DONE` file.
    pub done_file: &'a Path,
    pub workdir: &'a Path,
    pub answer: &'a str,
    pub exit_code: i32,
    pub agent_failed: bool,
    /// Variables for `expr`: `output`, `json`, `iteration`, `exit_code`, `item`, `params`...
    pub context: Value,
    pub env: &'a [(String, String)],
}

/// A success condition that could not be evaluated: the node fails with
/// `stop_error`.
#[derive(Debug, thiserror::Error)]
pub(super) enum CheckError {
    #[error("stop expr `{expr}`: {source}")]
    Expr {
        expr: String,
        source: minijinja::Error,
    },
    #[error(transparent)]
    Command(#[from] ShellError),
}

/// Evaluates `stop` against `ev`: the reason the node is done (the
/// condition that held, or `all`), or `None` when it is not.
pub(super) async fn evaluate(
    stop: &StopSpec,
    env: &minijinja::Environment<'static>,
    ev: &Evidence<'_>,
    shared: &Shared,
) -> Result<Option<StopReason>, CheckError> {
    let mut checks: Vec<(Condition, bool)> = Vec::new();
    let settled = |checks: &Vec<(Condition, bool)>| {
        let held = checks.iter().any(|(_, ok)| *ok);
        let failed = checks.iter().any(|(_, ok)| !*ok);
        if stop.all { failed } else { held }
    };
    if stop.done_file {
        checks.push((Condition::DoneFile, ev.done_file.exists()));
    }
    if let Some(p) = &stop.promise {
        checks.push((Condition::Promise, ev.answer.contains(p.as_str())));
    }
    if let Some(r) = &stop.output_matches {
        checks.push((Condition::OutputMatches, r.is_match(ev.answer)));
    }
    if stop.exit_zero {
        checks.push((Condition::ExitZero, ev.exit_code == 0 && !ev.agent_failed));
    }
    // A condition that cannot be evaluated fails the node whatever the
    // others say, so none is checked after it.
    let mut error = None;
    if let Some(e) = &stop.expr
        && !settled(&checks)
    {
        let held = env
            .compile_expression(e)
            .and_then(|x| x.eval(ev.context.clone()))
            .map_or_else(
                |source| {
                    error = Some(CheckError::Expr {
                        expr: e.clone(),
                        source,
                    });
                    false
                },
                |v| v.is_true(),
            );
        checks.push((Condition::Expr, held));
    }
    if let Some(c) = &stop.command
        && error.is_none()
        && !settled(&checks)
    {
        let code = shell::run(
            c,
            ev.workdir,
            ev.env,
            Output::Discard,
            Some(stop.timeout),
            &shared.supervisor,
        )
        .await
        .unwrap_or_else(|e| {
            error = Some(CheckError::Command(e));
            -1
        });
        checks.push((Condition::Command, code == 0));
    }
    if let Some(e) = error {
        return Err(e);
    }
    let done = if stop.all {
        checks.iter().all(|(_, ok)| *ok)
    } else {
        checks.iter().any(|(_, ok)| *ok)
    };
    Ok(match checks.iter().find(|(_, ok)| *ok) {
        Some(_) if done && stop.all && checks.len() > 1 => Some(StopReason::All),
        Some((condition, _)) if done => Some(StopReason::Met(*condition)),
        _ => None,
    })
}
