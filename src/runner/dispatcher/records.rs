//! Owns what the dispatcher tells: every event goes to the project bus as
//! a record (`WORKFLOW_START`, `NODE_*`, `INFO`) and to the observer (the
//! console), in that order; and the summaries of the instances at the end.

use super::fan_out::FanOuts;
use super::graph::JobGraph;
use super::groups::Rounds;
use crate::bus::{BusWriter, NewMessage};
use crate::compile::Program;
use crate::model::OnFailure;
use crate::runner::context::Shared;
use crate::runner::context::item_text;
use crate::runner::event::{Event, Observer};
use crate::runner::job::JobId;
use crate::runner::outcome::Status;
use crate::runner::summary::InstanceSummary;

/// Where events go.
pub(super) struct Output<'a> {
    /// The project bus (`None` when it cannot be opened: said once, and the
    /// apply goes on).
    pub(super) bus: Option<BusWriter>,
    pub(super) observer: &'a mut dyn Observer,
}

/// The output as an observer, for what runs after the last unit (the
/// workflow's `[success]` commands): it is recorded like the rest.
pub(super) struct Recorder<'o, 'a> {
    pub(super) out: &'o mut Output<'a>,
    pub(super) shared: &'o Shared,
    pub(super) graph: &'o JobGraph,
}

impl Observer for Recorder<'_, '_> {
    fn event(&mut self, event: &Event) {
        self.out.emit(event, self.shared, self.graph);
    }
}

impl std::fmt::Debug for Output<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("bus", &self.bus.is_some())
            .finish_non_exhaustive()
    }
}

impl Output<'_> {
    /// Records `event` on the project bus, then hands it to the observer;
    /// `graph` names the instance an event is about.
    pub(super) fn emit(&mut self, event: &Event, shared: &Shared, graph: &JobGraph) {
        self.record(event, shared, graph);
        self.observer.event(event);
    }

    /// The project-bus record of an event.
    fn record(&mut self, event: &Event, shared: &Shared, graph: &JobGraph) {
        let apply = ("apply_id", shared.apply_id.clone());
        let workflow = ("workflow", shared.workflow.clone());
        let (kind, task_id, meta, body): (&str, String, Vec<(&str, String)>, String) = match event {
            Event::WorkflowStarted { instances, .. } => (
                "WORKFLOW_START",
                String::new(),
                {
                    let mut meta = vec![
                        apply,
                        workflow,
                        ("instances", instances.to_string()),
                        ("pid", std::process::id().to_string()),
                        ("apply_start", shared.apply_start.to_string()),
                        // The params it runs with, as `--set` would give
                        // them: `status --workflow` plans the same instances.
                        ("sets", params_as_sets(&shared.program)),
                    ];
                    if shared.continued {
                        meta.push(("resumed", "true".into()));
                    }
                    if shared.stop_requests {
                        meta.push(("stop_requests", "usr1".into()));
                    }
                    if let Some(b) = shared.limits.budget_usd {
                        meta.push(("budget_usd", b.to_string()));
                    }
                    if let Some(file) = &shared.file {
                        meta.push(("file", file.display().to_string()));
                    }
                    if let Some(c) = shared.supervisor.containment() {
                        meta.push(("containment", c.to_string()));
                    }
                    meta
                },
                format!(
                    "workflow {} started ({instances} instances)",
                    shared.workflow
                ),
            ),
            Event::InstanceStarted { key, task_id } => {
                let i = graph.by_key(key);
                (
                    "NODE_START",
                    task_id.clone(),
                    node_meta(shared, graph, i, vec![apply, workflow]),
                    format!("{key} started"),
                )
            }
            Event::InstanceFinished { key, outcome } => {
                let i = graph.by_key(key);
                let completed = outcome.fingerprint.as_ref().map(|f| f.hash.clone());
                let kind = match outcome.status {
                    Status::Done => "NODE_DONE",
                    Status::Failed => "NODE_FAILED",
                    Status::Skipped => "NODE_SKIPPED",
                };
                let mut meta = node_meta(shared, graph, i, vec![apply, workflow]);
                if let Some(hash) = completed {
                    meta.retain(|(k, _)| *k != "fingerprint");
                    meta.push(("fingerprint", hash));
                }
                meta.push(("status", outcome.status.as_str().into()));
                meta.push(("stop_reason", outcome.stop_reason.to_string()));
                if let Some(run) = &outcome.run_id {
                    meta.push(("run_id", run.clone()));
                }
                if let Some(r) = &outcome.result_stop_reason {
                    meta.push(("result_stop_reason", r.clone()));
                }
                meta.push(("iterations", outcome.iterations.to_string()));
                meta.push(("duration_ms", outcome.duration.as_millis().to_string()));
                if let Some(w) = &outcome.worktree {
                    meta.push(("branch", w.branch.clone()));
                    meta.push(("head", w.head.clone()));
                    meta.push(("changed", w.stat()));
                }
                if let Some(c) = outcome.exit_code {
                    meta.push(("exit_code", c.to_string()));
                }
                if let Some(j) = &outcome.job {
                    meta.push(("job", j.label()));
                    if let Some(n) = &j.node {
                        meta.push(("worker", n.clone()));
                    }
                }
                if outcome.usage.tokens() > 0 || outcome.usage.cost_usd > 0.0 {
                    meta.push(("input_tokens", outcome.usage.input_tokens.to_string()));
                    meta.push(("output_tokens", outcome.usage.output_tokens.to_string()));
                    meta.push(("cost_usd", format!("{:.6}", outcome.usage.cost_usd)));
                }
                if let Some(n) = &shared.notifier
                    && outcome.stop_reason != crate::stop_reason::StopReason::UpToDate
                {
                    let mut payload: serde_json::Map<String, serde_json::Value> = meta
                        .iter()
                        .filter(|(k, _)| *k != "fingerprint")
                        .map(|(k, v)| ((*k).to_string(), typed(k, v)))
                        .collect();
                    payload.insert("project".into(), shared.project.clone().into());
                    if let Some(t) = &outcome.task_id {
                        payload.insert("task_id".into(), t.clone().into());
                    }
                    if let Some(e) = &outcome.error {
                        payload.insert("error".into(), e.clone().into());
                    }
                    payload.insert(
                        "ts".into(),
                        crate::bus::format_ts(crate::clock::now()).into(),
                    );
                    n.send("instance.finished", serde_json::Value::Object(payload));
                }
                let mut body =
                    format!("{key} {}: {}", outcome.status.as_str(), outcome.stop_reason);
                if let Some(e) = &outcome.error {
                    body.push('\n');
                    body.push_str(e);
                }
                (
                    kind,
                    outcome.task_id.clone().unwrap_or_default(),
                    meta,
                    body,
                )
            }
            Event::NoLongerTolerated { key } => {
                let i = graph.by_key(key);
                let mut meta = node_meta(shared, graph, i, vec![apply, workflow]);
                meta.push(("tolerated", "false".into()));
                (
                    "INFO",
                    String::new(),
                    meta,
                    format!(
                        "{key}: its earlier failure is no longer tolerated; it runs again next time"
                    ),
                )
            }
            Event::WaitingForWrites { key, other, globs } => {
                let i = graph.by_key(key);
                let mut meta = node_meta(shared, graph, i, vec![apply, workflow]);
                meta.push(("waiting_for", other.to_string()));
                meta.push(("writes", globs.0.clone()));
                meta.push(("their_writes", globs.1.clone()));
                (
                    "INFO",
                    String::new(),
                    meta,
                    format!(
                        "{key} waits for {other} to end: their declared writes overlap ({} and {})",
                        globs.0, globs.1
                    ),
                )
            }
            Event::Landed {
                key,
                instance,
                branch,
                target,
                result,
            } => {
                let i = graph.by_key(key);
                let mut meta = node_meta(shared, graph, i, vec![apply, workflow]);
                meta.push(("merged_instance", instance.to_string()));
                meta.push(("branch", branch.clone()));
                meta.push(("target", target.clone()));
                match result {
                    Ok(how) => (
                        "INFO",
                        String::new(),
                        meta,
                        format!("{key}: {instance} ({branch}) {how} into {target}"),
                    ),
                    Err(why) => (
                        "WARN",
                        String::new(),
                        meta,
                        format!("{key}: {instance} ({branch}) not merged into {target}: {why}"),
                    ),
                }
            }
            Event::OutsideWrites { key, files } => {
                let i = graph.by_key(key);
                let mut meta = node_meta(shared, graph, i, vec![apply, workflow]);
                meta.push(("outside_writes", files.join(",")));
                (
                    "WARN",
                    String::new(),
                    meta,
                    format!(
                        "{key} changed files outside its declared writes: {}",
                        files.join(", ")
                    ),
                )
            }
            Event::Overlapped { instances, files } => {
                let names: Vec<&str> = instances.iter().map(|k| &**k).collect();
                let meta = vec![
                    apply,
                    workflow,
                    ("overlap_instances", names.join(",")),
                    ("overlap_files", files.join(",")),
                ];
                (
                    "WARN",
                    String::new(),
                    meta,
                    format!(
                        "{} ran side by side and changed the same files: {}",
                        names.join(", "),
                        files.join(", ")
                    ),
                )
            }
            Event::InputsChanged { key, files } => {
                let i = graph.by_key(key);
                let mut meta = node_meta(shared, graph, i, vec![apply, workflow]);
                meta.push(("inputs_changed", files.join(",")));
                (
                    "INFO",
                    String::new(),
                    meta,
                    format!(
                        "{key} will run again on the next apply: this apply changed its inputs ({})",
                        files.join(", ")
                    ),
                )
            }
            Event::Tolerated { key, gates } => {
                let i = graph.by_key(key);
                let mut meta = node_meta(shared, graph, i, vec![apply, workflow]);
                meta.push(("tolerated", "true".into()));
                meta.push((
                    "gates",
                    gates.iter().map(|g| &**g).collect::<Vec<_>>().join(","),
                ));
                if let Some(o) = i.and_then(|i| graph.outcome(i)) {
                    meta.push(("stop_reason", o.stop_reason.to_string()));
                    meta.push(("iterations", o.iterations.to_string()));
                    if let Some(run) = &o.run_id {
                        meta.push(("run_id", run.clone()));
                    }
                }
                (
                    "INFO",
                    i.map(|i| {
                        graph
                            .outcome(i)
                            .and_then(|o| o.task_id.clone())
                            .unwrap_or_default()
                    })
                    .unwrap_or_default(),
                    meta,
                    format!("{key} failed; tolerated by the gate(s) that need it"),
                )
            }
            Event::Stopping { reason } => (
                "INFO",
                String::new(),
                vec![apply, workflow, ("stop_reason", reason.to_string())],
                format!("stopping: {reason}"),
            ),
            _ => return,
        };
        self.post(shared, kind, &task_id, meta, &body);
    }

    fn post(
        &mut self,
        shared: &Shared,
        kind: &str,
        task_id: &str,
        meta: Vec<(&str, String)>,
        body: &str,
    ) {
        let Some(bus) = self.bus.as_mut() else {
            return;
        };
        let msg = NewMessage {
            kind: kind.to_string(),
            project_id: shared.project.clone(),
            task_id: task_id.to_string(),
            run_id: String::new(),
            parents: Vec::new(),
            meta: meta
                .into_iter()
                .map(|(k, v)| (k.to_string(), shared.redactor.redact(&v).into_owned()))
                .collect(),
            body: shared.redactor.redact(body).into_owned(),
        };
        if let Err(e) = bus.append(&msg) {
            tracing::warn!("cannot post {kind}: {e}");
        }
    }
}

/// A record's meta value as JSON: counts and amounts as numbers.
fn typed(key: &str, value: &str) -> serde_json::Value {
    let number = match key {
        "iterations" | "duration_ms" | "exit_code" | "input_tokens" | "output_tokens" => {
            value.parse::<i64>().ok().map(serde_json::Value::from)
        }
        "cost_usd" => value.parse::<f64>().ok().map(serde_json::Value::from),
        _ => None,
    };
    number.unwrap_or_else(|| value.into())
}

fn node_meta<'k>(
    shared: &Shared,
    graph: &JobGraph,
    i: Option<JobId>,
    mut meta: Vec<(&'k str, String)>,
) -> Vec<(&'k str, String)> {
    if let Some(i) = i {
        let job = &graph.jobs[i];
        meta.push(("node", shared.program.node(job.node).id.clone()));
        meta.push(("instance", job.key.to_string()));
        meta.push(("fingerprint", job.fingerprint.hash.clone()));
        if let Some(item) = &job.item {
            meta.push(("item", item_text(Some(item))));
        }
    }
    meta
}

/// The instances done in this apply whose `inputs` are not what they ran
/// on any more (docs/watch.md, "An apply that changes its own inputs"),
/// each with the files that differ.
pub(super) fn inputs_changed(
    graph: &JobGraph,
    runs_root: &std::path::Path,
) -> Vec<(std::sync::Arc<str>, Vec<String>)> {
    let mut hasher = crate::incremental::inputs::InputHasher::new(runs_root.to_path_buf());
    let mut out = Vec::new();
    for j in graph.jobs.ids() {
        let job = &graph.jobs[j];
        let Some(outcome) = graph.outcome(j).filter(|o| {
            o.status == Status::Done && o.stop_reason != crate::stop_reason::StopReason::UpToDate
        }) else {
            continue;
        };
        if job.inputs.is_empty() {
            continue;
        }
        // What it completed with (a re-plan may have changed it).
        let before = &outcome
            .fingerprint
            .as_ref()
            .map_or(&job.fingerprint, |f| f)
            .inputs;
        let now = hasher.hash(&job.workdir, &job.inputs);
        let mut files: Vec<String> = before
            .iter()
            .filter(|(path, hash)| now.get(*path) != Some(*hash))
            .map(|(path, _)| path.clone())
            .chain(now.keys().filter(|p| !before.contains_key(*p)).cloned())
            .collect();
        files.sort();
        if !files.is_empty() {
            out.push((std::sync::Arc::clone(&job.key), files));
        }
    }
    out
}

/// The entry workflow's params as a JSON list of `NAME=VALUE` (each value
/// as JSON, which `--set` reads as TOML); tables, which TOML writes
/// otherwise, are left out.
fn params_as_sets(program: &Program) -> String {
    let sets: Vec<String> = program
        .scopes
        .first()
        .map(|s| {
            s.params
                .iter()
                .filter(|(_, v)| !v.is_object())
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        })
        .unwrap_or_default();
    serde_json::to_string(&sets).unwrap_or_default()
}

/// The gates that passed over failed instance `j`, when every instance
/// that needs it (or its fan-out) is such a gate; none otherwise.
pub(super) fn tolerating_gates(graph: &JobGraph, fan_outs: &FanOuts, j: JobId) -> Vec<JobId> {
    let failed = graph.outcome(j).is_some_and(|o| o.status == Status::Failed);
    if !failed {
        return Vec::new();
    }
    let dependents: Vec<JobId> = graph.dependents[j]
        .iter()
        .chain(
            fan_outs
                .parent_of(j)
                .iter()
                .flat_map(|&p| &graph.dependents[p]),
        )
        .copied()
        .collect();
    let passed_gate = |&d: &JobId| {
        matches!(graph.jobs[d].kind, crate::runner::job::JobKind::Gate(_))
            && graph.outcome(d).is_some_and(|o| o.status == Status::Done)
    };
    if dependents.is_empty() || !dependents.iter().all(passed_gate) {
        return Vec::new();
    }
    dependents
}

/// Every instance that ran or was skipped, in plan order; an expanded
/// fan-out is shown as its instances.
pub(super) fn summaries(
    graph: &JobGraph,
    fan_outs: &FanOuts,
    rounds: &Rounds,
    program: &Program,
) -> Vec<InstanceSummary> {
    let mut out = Vec::new();
    for i in graph.jobs.ids() {
        if fan_outs.parent_of(i).is_some() || rounds.is_retired(i) {
            continue;
        }
        let list = fan_outs
            .children_of(i)
            .map_or_else(|| vec![i], <[JobId]>::to_vec);
        for j in list {
            let Some(o) = graph.outcome(j) else {
                continue;
            };
            let job = &graph.jobs[j];
            let tolerated = !tolerating_gates(graph, fan_outs, j).is_empty();
            let mut summary = InstanceSummary::new(
                &job.key,
                &program.node(job.node).id,
                job.item.as_ref(),
                o,
                job.on_failure != OnFailure::Ignore && !tolerated,
            );
            summary.tolerated = tolerated;
            out.push(summary);
        }
    }
    out
}
