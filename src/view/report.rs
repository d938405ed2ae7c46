//! One apply's instances as `status` and `conductor serve` show them: each
//! instance's state, iterations and stop reason from the project bus, and
//! from its run records what it has cost, why its last iteration did not
//! finish it, and for a running one how long its iteration has run, how
//! long its agent has been silent and its latest tool call. With the
//! apply's plan, each instance's needs and, while the apply runs, the
//! instances it has not started (docs/run-store.md).

use std::path::Path;

use serde::Serialize;

use super::applies::Apply;
use crate::plan::Plan;
use crate::store::layout::{ProjectDir, TaskDir};

/// One instance of an apply.
#[expect(
    clippy::struct_field_names,
    reason = "the field names of `status --json`, which users' scripts read"
)]
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(crate) struct Instance {
    pub instance: String,
    pub node: String,
    pub state: String,
    pub iterations: u32,
    pub stop_reason: String,
    /// For an up-to-date instance, why the run that made its result ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_stop_reason: Option<String>,
    pub task_id: String,
    /// What its runs cost, as their agents reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Tokens its runs used, as their agents reported.
    #[serde(skip_serializing_if = "is_zero")]
    pub input_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub output_tokens: u64,
    /// Why its last iteration did not finish it (docs/console.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// A running one: how long its iteration has run, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_ms: Option<u64>,
    /// A running one: how long since its agent last wrote output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_ms: Option<u64>,
    /// A running one: its agent's latest tool call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    /// An isolated one: its branch, and what it changed (docs/isolation.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
    /// One run elsewhere: its executor's job (`slurm job 12`), and the
    /// node it runs or ran on (docs/distributed.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The instances it depends on, when the plan is known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// One not started yet: the instances it needs that are not done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Instance {
    fn new(instance: String, node: String, state: &str) -> Self {
        Self {
            instance,
            node,
            state: state.to_string(),
            iterations: 0,
            stop_reason: String::new(),
            result_stop_reason: None,
            task_id: String::new(),
            cost_usd: None,
            input_tokens: 0,
            output_tokens: 0,
            why: None,
            running_ms: None,
            silent_ms: None,
            activity: None,
            branch: None,
            job: None,
            worker: None,
            changed: None,
            needs: Vec::new(),
            waiting_for: Vec::new(),
        }
    }
}

/// One apply, its instances in the order they started, then those not
/// started in plan order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Report {
    pub workflow: String,
    pub apply_id: String,
    pub started: String,
    pub state: String,
    pub instances: Vec<Instance>,
}

/// How much of the run store a report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Depth {
    /// The project bus only: states, and what ended instances used as
    /// their records say (a list of many applies).
    Records,
    /// Each instance's run records too: why, a running one's age,
    /// silence and activity.
    Runs,
}

/// The report of `apply`; `plan`, when known, adds needs and, while the
/// apply runs, what it has not started.
pub(crate) fn build(apply: &Apply, plan: Option<&Plan>, depth: Depth) -> Report {
    let mut rows: Vec<Instance> = Vec::new();
    let mut at_key: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for m in &apply.records {
        let instance = m.meta.get("instance").cloned().unwrap_or_default();
        let at = *at_key.entry(instance.clone()).or_insert_with(|| {
            let node = m.meta.get("node").cloned().unwrap_or_default();
            rows.push(Instance::new(instance, node, "running"));
            rows.len() - 1
        });
        let row = &mut rows[at];
        if !m.task_id.is_empty() {
            row.task_id.clone_from(&m.task_id);
        }
        if m.kind != "NODE_START" {
            row.state = m.meta.get("status").cloned().unwrap_or_default();
            row.stop_reason = m.meta.get("stop_reason").cloned().unwrap_or_default();
            row.result_stop_reason = m.meta.get("result_stop_reason").cloned();
            row.branch = m.meta.get("branch").cloned();
            row.changed = m.meta.get("changed").cloned();
            row.job = m.meta.get("job").cloned();
            row.worker = m.meta.get("worker").cloned();
            let number = |k: &str| m.meta.get(k).and_then(|v| v.parse::<u64>().ok());
            row.iterations =
                number("iterations").map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX));
            row.input_tokens = number("input_tokens").unwrap_or(0);
            row.output_tokens = number("output_tokens").unwrap_or(0);
            row.cost_usd = m
                .meta
                .get("cost_usd")
                .and_then(|v| v.parse().ok())
                .filter(|c: &f64| *c > 0.0);
        }
    }
    let project = ProjectDir::at(apply.project_dir.clone());
    if depth == Depth::Runs {
        // A done instance's record says what it used; only the others have
        // a why, an age or an activity to read (an apply of 10,000 done
        // instances reads no run record).
        for row in rows
            .iter_mut()
            .filter(|r| !r.task_id.is_empty() && r.state != "done")
        {
            runs_of(&project.task(&row.task_id), row);
        }
    }
    let abandoned = apply.abandoned();
    for row in rows.iter_mut().filter(|r| r.state == "running") {
        let task = project.task(&row.task_id);
        row.iterations = u32::try_from(task.run_dirs().len()).unwrap_or(u32::MAX);
        if let Some(job) = crate::store::ExecutorJob::read(&task) {
            row.job = Some(job.label());
            row.worker = job.node;
        }
        if abandoned {
            row.state = "stale".into();
            row.stop_reason = "conductor is no longer running".into();
            // Its last run-info still says running; nothing runs.
            row.running_ms = None;
            row.silent_ms = None;
            row.activity = None;
        }
    }
    let state = match &apply.stop {
        Some(s) => s.meta.get("status").cloned().unwrap_or_default(),
        None if abandoned => "stale".into(),
        None => "running".into(),
    };
    if let Some(plan) = plan {
        with_plan(plan, &mut rows, state == "running");
    }
    Report {
        workflow: apply.workflow().to_string(),
        apply_id: apply.apply_id().to_string(),
        started: apply.start.ts.clone(),
        state,
        instances: rows,
    }
}

/// The plan instance a recorded instance comes from: its own key, or for
/// an instance of a run-time fan-out, `node[*]`.
fn planned<'p>(
    plan: &'p Plan,
    by_key: &std::collections::HashMap<&str, usize>,
    row: &Instance,
) -> Option<&'p crate::plan::Instance> {
    by_key
        .get(row.instance.as_str())
        .or_else(|| by_key.get(format!("{}[*]", row.node).as_str()))
        .map(|&i| &plan.instances[i])
}

/// Needs from the plan; while the apply runs, the instances it has not
/// started: queued when what they need is done (they wait for a slot),
/// else waiting, with what for; a run-time fan-out not yet expanded is
/// pending. A workflow edited since plans what it is now.
fn with_plan(plan: &Plan, rows: &mut Vec<Instance>, running: bool) {
    let by_key: std::collections::HashMap<&str, usize> = plan
        .instances
        .iter()
        .enumerate()
        .map(|(i, inst)| (&*inst.key, i))
        .collect();
    // A fan-out's needs name `node[*]`; once expanded, its instances.
    let expanded = |rows: &[Instance], key: &str| -> Vec<String> {
        match key.strip_suffix("[*]") {
            Some(node) => {
                let mine: Vec<String> = rows
                    .iter()
                    .filter(|r| r.node == node && r.instance != key)
                    .map(|r| r.instance.clone())
                    .collect();
                if mine.is_empty() {
                    vec![key.to_string()]
                } else {
                    mine
                }
            }
            None => vec![key.to_string()],
        }
    };
    for at in 0..rows.len() {
        if let Some(inst) = planned(plan, &by_key, &rows[at]) {
            let needs = inst.needs.iter().flat_map(|n| expanded(rows, n)).collect();
            rows[at].needs = needs;
        }
    }
    if !running {
        return;
    }
    let known: std::collections::HashSet<String> =
        rows.iter().map(|r| r.instance.clone()).collect();
    let nodes_started: std::collections::HashSet<String> =
        rows.iter().map(|r| r.node.clone()).collect();
    let mut more = Vec::new();
    for inst in &plan.instances {
        let key = &*inst.key;
        let fan_out = key.ends_with("[*]");
        // A run-time fan-out shows as its instances once it expanded.
        if known.contains(key) || (fan_out && nodes_started.contains(&*inst.node)) {
            continue;
        }
        let needs: Vec<String> = inst.needs.iter().flat_map(|n| expanded(rows, n)).collect();
        let done = |k: &str| rows.iter().any(|r| r.instance == k && r.state == "done");
        let waiting_for: Vec<String> = needs.iter().filter(|n| !done(n)).cloned().collect();
        let state = if fan_out {
            "pending"
        } else if waiting_for.is_empty() {
            "queued"
        } else {
            "waiting"
        };
        let mut row = Instance::new(key.to_string(), inst.node.to_string(), state);
        row.needs = needs;
        row.waiting_for = waiting_for;
        more.push(row);
    }
    rows.extend(more);
}

/// What an instance's run records add to its row: cost and tokens, the
/// last why, and for a running iteration its age, its agent's silence and
/// latest tool call.
fn runs_of(task: &TaskDir, row: &mut Instance) {
    let mut cost = 0.0;
    let mut why = None;
    let mut last = None;
    row.input_tokens = 0;
    row.output_tokens = 0;
    for run in task.run_dirs() {
        let Ok(info) = crate::store::RunInfo::read(&run.info()) else {
            continue;
        };
        cost += info.cost_usd.unwrap_or(0.0);
        row.input_tokens += info.input_tokens.unwrap_or(0);
        row.output_tokens += info.output_tokens.unwrap_or(0);
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
    let now = crate::clock::now();
    let since = |t: jiff::Timestamp| u64::try_from(now.duration_since(t).as_millis()).ok();
    row.running_ms = info
        .start_time
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(since);
    // Silent since the later of its start and its last output.
    let wrote = [run.stdout(), run.stderr()]
        .iter()
        .filter_map(|p| modified(p))
        .max();
    row.silent_ms = match wrote {
        Some(t) => since(t).map(|s| s.min(row.running_ms.unwrap_or(s))),
        None => row.running_ms,
    };
    row.activity = crate::model::AgentKind::parse(&info.agent)
        .and_then(|k| crate::agents::activity::latest(k, &run.stdout()));
}

fn modified(path: &Path) -> Option<jiff::Timestamp> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    jiff::Timestamp::try_from(t).ok()
}
