//! Owns the question the Ralph loop asks after every iteration: is the node
//! done? It evaluates the success conditions in force
//! (docs/workflow-format.md, `stop`): any of them by default, every one
//! with `all = true`; cheap checks first, the `command` check only when its
//! answer still matters.

use std::path::Path;

use minijinja::Value;

use super::context::Shared;
use super::job::StopSpec;
use super::why::{Unmet, Why};
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
    /// Where the `command` check's output goes (`stop-command.txt` in the
    /// run folder): its last lines say why it failed.
    pub command_output: &'a Path,
    /// Secrets to redact from that output.
    pub redact: &'a [(String, String)],
}

/// What the conditions made of an iteration.
#[derive(Debug)]
pub(super) enum Judged {
    /// The node is done, for this reason (the condition, or `all`).
    Done(StopReason),
    /// It is not: the conditions not met, and what was seen instead.
    NotDone(Why),
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
/// condition that held, or `all`), or what was not met.
pub(super) async fn evaluate(
    stop: &StopSpec,
    env: &minijinja::Environment<'static>,
    ev: &Evidence<'_>,
    shared: &Shared,
) -> Result<Judged, CheckError> {
    // Each condition checked, with what was seen when it was not met.
    let mut checks: Vec<(Condition, Option<Unmet>)> = Vec::new();
    let settled = |checks: &Vec<(Condition, Option<Unmet>)>| {
        let held = checks.iter().any(|(_, unmet)| unmet.is_none());
        let failed = checks.iter().any(|(_, unmet)| unmet.is_some());
        if stop.all { failed } else { held }
    };
    let unless = |held: bool, unmet: Unmet| (!held).then_some(unmet);
    if stop.done_file {
        checks.push((
            Condition::DoneFile,
            unless(ev.done_file.exists(), Unmet::NoDoneFile),
        ));
    }
    if let Some(p) = &stop.promise {
        checks.push((
            Condition::Promise,
            unless(
                ev.answer.contains(p.as_str()),
                Unmet::NoPromise { promise: p.clone() },
            ),
        ));
    }
    if let Some(r) = &stop.output_matches {
        checks.push((
            Condition::OutputMatches,
            unless(
                r.is_match(ev.answer),
                Unmet::NoMatch {
                    pattern: r.as_str().to_string(),
                },
            ),
        ));
    }
    if stop.exit_zero {
        checks.push((
            Condition::ExitZero,
            unless(
                ev.exit_code == 0 && !ev.agent_failed,
                Unmet::NonZero {
                    exit_code: ev.exit_code,
                },
            ),
        ));
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
        checks.push((
            Condition::Expr,
            unless(held, Unmet::ExprFalse { expr: e.clone() }),
        ));
    }
    if let Some(c) = &stop.command
        && error.is_none()
        && !settled(&checks)
    {
        let code = shell::run(
            c,
            ev.workdir,
            ev.env,
            Output {
                path: ev.command_output,
                redact: ev.redact,
            },
            Some(stop.timeout),
            &shared.supervisor,
        )
        .await
        .unwrap_or_else(|e| {
            error = Some(CheckError::Command(e));
            -1
        });
        checks.push((
            Condition::Command,
            unless(
                code == 0,
                Unmet::CommandFailed {
                    command: c.clone(),
                    exit_code: code,
                    tail: super::iteration::tail_lines(ev.command_output, 3),
                },
            ),
        ));
    }
    if let Some(e) = error {
        return Err(e);
    }
    let done = if stop.all {
        checks.iter().all(|(_, unmet)| unmet.is_none())
    } else {
        checks.iter().any(|(_, unmet)| unmet.is_none())
    };
    Ok(match checks.iter().find(|(_, unmet)| unmet.is_none()) {
        Some(_) if done && stop.all && checks.len() > 1 => Judged::Done(StopReason::All),
        Some((condition, _)) if done => Judged::Done(StopReason::Met(*condition)),
        _ => Judged::NotDone(Why {
            agent: None,
            json: None,
            unmet: checks.into_iter().filter_map(|(_, unmet)| unmet).collect(),
        }),
    })
}
