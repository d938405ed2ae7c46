//! The plan as a person reads it: instances in dependency order, each with
//! its agent, needs and loop limits, then the worst case.

use std::fmt::Write;

use super::{InstanceKind, Plan, StopPlan};

/// The text `conductor plan` prints.
pub fn to_text(plan: &Plan) -> String {
    to_text_with(plan, &std::collections::BTreeMap::new())
}

/// The plan's text with, under each instance, what an apply would do with
/// it (`states` by instance key: new, up to date, changed: ..).
pub fn to_text_with(plan: &Plan, states: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "workflow {} (project {})", plan.workflow, plan.project);
    if !plan.params.is_empty() {
        let params: Vec<String> = plan
            .params
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        let _ = writeln!(out, "params: {}", params.join(", "));
    }
    let _ = writeln!(out);
    for (n, inst) in plan.instances.iter().enumerate() {
        let _ = writeln!(out, "{:>3}. {}", n + 1, inst.key);
        if let Some(d) = &inst.description {
            let _ = writeln!(out, "     {d}");
        }
        if let Some(state) = states.get(&*inst.key) {
            let _ = writeln!(out, "     state:  {state}");
        }
        match &inst.kind {
            InstanceKind::Agent {
                agent,
                fallback_agents,
                stop,
            } => {
                let _ = writeln!(
                    out,
                    "     agent:  {}",
                    agent_text(&agent.name, agent.kind, agent.model.as_deref())
                );
                if !fallback_agents.is_empty() {
                    let names: Vec<&str> =
                        fallback_agents.iter().map(|a| a.name.as_str()).collect();
                    let _ = writeln!(out, "     fallback: {}", names.join(", "));
                }
                stop_text(&mut out, stop);
            }
            InstanceKind::Gate { expr } => {
                let _ = writeln!(out, "     gate:   {expr}");
            }
            InstanceKind::Merge {
                from,
                into,
                verify,
                resolver,
            } => {
                let into = into
                    .clone()
                    .unwrap_or_else(|| "an integration branch of its own".to_string());
                let _ = writeln!(
                    out,
                    "     merge:  {} into {into}, one at a time",
                    from.join(", ")
                );
                if !verify.is_empty() {
                    let _ = writeln!(out, "     verify: {}", verify.join("; "));
                }
                match resolver {
                    Some(r) => {
                        let _ = writeln!(
                            out,
                            "     conflicts resolved by: {}",
                            agent_text(&r.agent.name, r.agent.kind, r.agent.model.as_deref())
                        );
                        stop_text(&mut out, &r.stop);
                    }
                    None => {
                        let _ = writeln!(out, "     conflicts: left unmerged");
                    }
                }
            }
            InstanceKind::FanOut {
                from,
                path,
                lines,
                max_items,
                agent,
                stop,
            } => {
                let source = path.as_deref().map_or_else(
                    || {
                        if *lines {
                            "lines".to_string()
                        } else {
                            "instances".to_string()
                        }
                    },
                    str::to_string,
                );
                let _ = writeln!(
                    out,
                    "     fan-out at run time: one instance per item of {from} ({source}), at most {max_items}"
                );
                let _ = writeln!(
                    out,
                    "     agent:  {}",
                    agent_text(&agent.name, agent.kind, agent.model.as_deref())
                );
                stop_text(&mut out, stop);
            }
        }
        if &*inst.workdir != "." {
            let _ = writeln!(out, "     workdir: {}", inst.workdir);
        }
        if let Some(iso) = inst
            .isolation
            .as_ref()
            .filter(|_| !matches!(inst.kind, InstanceKind::Merge { .. }))
        {
            let network = match iso.network {
                Some(false) => ", no network",
                _ => "",
            };
            let _ = writeln!(
                out,
                "     isolation: {} from {}{network}",
                iso.mode, iso.base
            );
        }
        if !inst.needs.is_empty() {
            let _ = writeln!(out, "     needs:  {}", inst.needs.join(", "));
        }
        if let Some(prompt) = &inst.prompt {
            let _ = writeln!(out, "     prompt:");
            for line in prompt.lines() {
                let _ = writeln!(out, "       | {line}");
            }
        }
    }
    let w = &plan.worst_case;
    let _ = writeln!(out);
    let runs = w
        .agent_runs
        .map_or_else(|| "unbounded".to_string(), |r| r.to_string());
    let _ = writeln!(
        out,
        "worst case: {} instances, {runs} agent runs",
        w.instances
    );
    let budget = match (w.budget_usd, w.budget_tokens) {
        (None, None) => "no budget set".to_string(),
        (usd, tokens) => {
            let mut parts = Vec::new();
            if let Some(u) = usd {
                parts.push(format!("${u:.2}"));
            }
            if let Some(t) = tokens {
                parts.push(format!("{t} tokens"));
            }
            parts.join(", ")
        }
    };
    let _ = writeln!(out, "budget: {budget}");
    for s in &plan.success {
        let _ = writeln!(out, "success: `{}` in {}", s.command, s.workdir);
    }
    out
}

fn agent_text(name: &str, kind: &str, model: Option<&str>) -> String {
    match model {
        Some(m) => format!("{name} ({kind}, {m})"),
        None if name == kind => name.to_string(),
        None => format!("{name} ({kind})"),
    }
}

fn stop_text(out: &mut String, stop: &StopPlan) {
    let conds: Vec<String> = stop
        .success
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::Bool(true) => k.clone(),
            serde_json::Value::String(s) => format!("{k} `{s}`"),
            other => format!("{k} {other}"),
        })
        .collect();
    let joiner = if stop.all { " and " } else { " or " };
    let mut limits = vec![
        format!("max {} iterations", stop.max_iterations),
        format!("timeout {}", stop.timeout),
    ];
    if let Some(d) = &stop.idle_timeout {
        limits.push(format!("idle {d}"));
    }
    if let Some(d) = &stop.deadline {
        limits.push(format!("deadline {d}"));
    }
    if let Some(b) = stop.budget_usd {
        limits.push(format!("${b:.2}"));
    }
    if let Some(t) = stop.budget_tokens {
        limits.push(format!("{t} tokens"));
    }
    if let Some(s) = stop.stall {
        limits.push(format!("stall {s}"));
    }
    let _ = writeln!(out, "     done:   {}", conds.join(joiner));
    let _ = writeln!(out, "     limits: {}", limits.join(", "));
}
