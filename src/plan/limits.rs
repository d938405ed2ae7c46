//! Limits: the stop plan of one instance (success conditions in force, with
//! the per-kind default of docs/workflow-format.md, and its limits with the built-in
//! defaults), and the worst case of a whole plan before anything runs.

use super::model::{Instance, InstanceKind, StopPlan, WorstCase};
use crate::compile::{DEFAULT_MAX_ITERATIONS, DEFAULT_TIMEOUT_MS, Program};
use crate::model::{Duration, Spanned, Stop};
use crate::stop_reason::Condition;

/// How many times a sub-workflow's inner nodes may loop: its `stop`'s
/// `max_iterations`, or once without a `stop`.
pub(super) fn group_iterations(stop: Option<&Stop>) -> u32 {
    stop.map_or(1, |s| {
        s.max_iterations
            .as_ref()
            .map_or(DEFAULT_MAX_ITERATIONS, |m| m.value)
    })
}

pub(super) fn stop_plan(
    stop: &Stop,
    process: bool,
    mut render: impl FnMut(&Spanned<String>) -> String,
) -> StopPlan {
    let mut success = serde_json::Map::new();
    let mut set = |c: Condition, v: serde_json::Value| success.insert(c.as_str().into(), v);
    if let Some(v) = &stop.done_file {
        set(Condition::DoneFile, v.value.into());
    }
    if let Some(v) = &stop.promise {
        set(Condition::Promise, render(v).into());
    }
    if let Some(v) = &stop.output_matches {
        set(Condition::OutputMatches, v.value.clone().into());
    }
    if let Some(v) = &stop.command {
        set(Condition::Command, render(v).into());
    }
    if let Some(v) = &stop.expr {
        set(Condition::Expr, v.value.clone().into());
    }
    if let Some(v) = &stop.exit_zero {
        set(Condition::ExitZero, v.value.into());
    }
    if success.is_empty() {
        // The default success condition depends on the agent kind
        // (docs/workflow-format.md, "The default success condition").
        let c = if process {
            Condition::DoneFile
        } else {
            Condition::ExitZero
        };
        success.insert(c.as_str().into(), true.into());
    }
    let text = |d: &Option<Spanned<Duration>>| d.as_ref().map(|d| d.value.to_text());
    StopPlan {
        success,
        all: stop.all.as_ref().is_some_and(|a| a.value),
        max_iterations: stop
            .max_iterations
            .as_ref()
            .map_or(DEFAULT_MAX_ITERATIONS, |m| m.value),
        timeout: stop
            .timeout
            .as_ref()
            .map_or(
                Duration {
                    millis: DEFAULT_TIMEOUT_MS,
                },
                |t| t.value,
            )
            .to_text(),
        idle_timeout: text(&stop.idle_timeout),
        deadline: text(&stop.deadline),
        budget_usd: stop.budget_usd.as_ref().map(|b| b.value),
        budget_tokens: stop.budget_tokens.as_ref().map(|b| b.value),
        stall: stop.stall.as_ref().map(|s| s.value),
    }
}

pub(super) fn worst_case(program: &Program, instances: &[Instance]) -> WorstCase {
    let mut runs: u64 = 0;
    let mut usd: Option<f64> = Some(0.0);
    let mut tokens: Option<u64> = Some(0);
    for inst in instances {
        let (stop, copies) = match &inst.kind {
            InstanceKind::Agent { stop, .. } => (stop, 1),
            InstanceKind::FanOut {
                stop, max_items, ..
            } => (stop, u64::from(*max_items)),
            InstanceKind::Merge {
                resolver: Some(r), ..
            } => (&r.stop, 1),
            InstanceKind::Gate { .. } | InstanceKind::Merge { .. } => continue,
        };
        let loops: u64 = inst
            .groups
            .iter()
            .filter_map(|g| program.groups.iter().find(|pg| &pg.id == g))
            .map(|g| u64::from(group_iterations(g.stop.as_ref())))
            .product();
        runs = runs.saturating_add(copies * loops * u64::from(stop.max_iterations));
        #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let factor = (copies * loops) as f64;
        usd = usd.zip(stop.budget_usd).map(|(a, b)| a + b * factor);
        tokens = tokens
            .zip(stop.budget_tokens)
            .map(|(a, b)| a.saturating_add(b.saturating_mul(copies * loops)));
    }
    let budget_usd = match (usd, program.budget_usd) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    WorstCase {
        instances: instances.len(),
        agent_runs: Some(match program.max_agents {
            Some(cap) => runs.min(u64::from(cap)),
            None => runs,
        }),
        budget_usd,
        budget_tokens: tokens,
        max_agents: program.max_agents,
    }
}
