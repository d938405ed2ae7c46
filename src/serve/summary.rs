//! Owns what the page's overview and apply view say of an apply beyond its
//! instances: the counts by state (as the console's header counts them),
//! what it has cost against its budget, how long it has run, and the
//! attention strip (failed, still looping, silent, slow, asking a person),
//! each with its age (docs/api.md).

use serde::Serialize;

use crate::bus::Message;
use crate::view::applies::Apply;
use crate::view::report::{Instance, Report};

/// How many instances are in each state.
#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub(super) struct Counts {
    pub done: usize,
    pub running: usize,
    pub queued: usize,
    pub waiting: usize,
    pub pending: usize,
    pub failed: usize,
    pub skipped: usize,
    pub stale: usize,
    pub total: usize,
}

/// One apply, in a line.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(super) struct ApplySummary {
    pub project: String,
    pub workflow: String,
    pub apply_id: String,
    pub started: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    pub state: String,
    pub counts: Counts,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// Its conductor is alive: stop can act.
    pub running: bool,
}

/// Something on an apply that a person should look at.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(super) struct Attention {
    pub instance: String,
    /// `failed`, `looping`, `silent`, `slow` or `question`.
    pub kind: &'static str,
    pub age_ms: u64,
    pub detail: String,
}

/// One apply, whole.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(super) struct ApplyDetail {
    #[serde(flatten)]
    pub summary: ApplySummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub instances: Vec<Instance>,
    pub attention: Vec<Attention>,
}

/// An agent silent this long is said to be.
const SILENT_MS: u64 = 30_000;

fn since(ts: &str) -> Option<u64> {
    let t = ts.parse::<jiff::Timestamp>().ok()?;
    u64::try_from(crate::clock::now().duration_since(t).as_millis()).ok()
}

pub(super) fn summary(project: &str, apply: &Apply, report: &Report) -> ApplySummary {
    let mut counts = Counts {
        total: report.instances.len(),
        ..Counts::default()
    };
    for r in &report.instances {
        match r.state.as_str() {
            "done" => counts.done += 1,
            "running" => counts.running += 1,
            "queued" => counts.queued += 1,
            "waiting" => counts.waiting += 1,
            "pending" => counts.pending += 1,
            "failed" => counts.failed += 1,
            "skipped" => counts.skipped += 1,
            _ => counts.stale += 1,
        }
    }
    let cost: f64 = report.instances.iter().filter_map(|r| r.cost_usd).sum();
    let ended = apply.stop.as_ref().map(|m| m.ts.clone());
    // A stale apply ran until its last record.
    let until = ended.clone().or_else(|| {
        (report.state == "stale")
            .then(|| apply.records.last().map(|m| m.ts.clone()))
            .flatten()
    });
    let duration_ms = match (&until, apply.start.ts.parse::<jiff::Timestamp>()) {
        (Some(end), Ok(start)) => end
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|e| u64::try_from(e.duration_since(start).as_millis()).ok())
            .unwrap_or(0),
        (None, _) => since(&apply.start.ts).unwrap_or(0),
        _ => 0,
    };
    ApplySummary {
        project: project.to_string(),
        workflow: report.workflow.clone(),
        apply_id: report.apply_id.clone(),
        started: report.started.clone(),
        ended,
        state: report.state.clone(),
        counts,
        duration_ms,
        cost_usd: (cost > 0.0).then_some(cost),
        input_tokens: report.instances.iter().map(|r| r.input_tokens).sum(),
        output_tokens: report.instances.iter().map(|r| r.output_tokens).sum(),
        budget_usd: apply
            .start
            .meta
            .get("budget_usd")
            .and_then(|b| b.parse().ok()),
        running: report.state == "running",
    }
}

/// What needs a person's eye, most urgent first: failures, questions
/// nobody answered, silent agents, slow ones, loops still going.
pub(super) fn attention(
    apply: &Apply,
    report: &Report,
    questions: &[(String, Message)],
) -> Vec<Attention> {
    let last_record = |key: &str, kind: Option<&str>| {
        apply
            .records
            .iter()
            .rev()
            .find(|m| {
                m.meta.get("instance").map(String::as_str) == Some(key)
                    && kind.is_none_or(|k| m.kind == k)
            })
            .map(|m| m.ts.clone())
    };
    let mut out = Vec::new();
    for r in report.instances.iter().filter(|r| r.state == "failed") {
        let detail = match &r.why {
            Some(why) => format!("{}: {why}", r.stop_reason),
            None => r.stop_reason.clone(),
        };
        out.push(Attention {
            instance: r.instance.clone(),
            kind: "failed",
            age_ms: last_record(&r.instance, None)
                .and_then(|t| since(&t))
                .unwrap_or(0),
            detail,
        });
    }
    for (key, q) in questions {
        out.push(Attention {
            instance: key.clone(),
            kind: "question",
            age_ms: since(&q.ts).unwrap_or(0),
            detail: q.body.lines().next().unwrap_or_default().to_string(),
        });
    }
    let medians = medians(apply);
    for r in report.instances.iter().filter(|r| r.state == "running") {
        let started = last_record(&r.instance, Some("NODE_START")).and_then(|t| since(&t));
        if let Some(silent) = r.silent_ms.filter(|s| *s >= SILENT_MS) {
            out.push(Attention {
                instance: r.instance.clone(),
                kind: "silent",
                age_ms: silent,
                detail: format!("no output for {}s", silent / 1000),
            });
        }
        if let (Some(age), Some(median)) = (started, medians.get(r.node.as_str()))
            && age > median.saturating_mul(2)
        {
            out.push(Attention {
                instance: r.instance.clone(),
                kind: "slow",
                age_ms: age,
                detail: format!(
                    "running {}s, its node's finished instances took {}s (median)",
                    age / 1000,
                    median / 1000
                ),
            });
        }
        if r.iterations > 1 {
            out.push(Attention {
                instance: r.instance.clone(),
                kind: "looping",
                age_ms: started.unwrap_or(0),
                detail: format!(
                    "iteration {}; the last did not finish it: {}",
                    r.iterations,
                    r.why.as_deref().unwrap_or("no reason recorded")
                ),
            });
        }
    }
    out
}

/// The median duration of each node's instances that ran to done in this
/// apply (an up-to-date one did not run).
fn medians(apply: &Apply) -> std::collections::HashMap<&str, u64> {
    let mut by_node: std::collections::HashMap<&str, Vec<u64>> = std::collections::HashMap::new();
    for m in apply.records.iter().filter(|m| {
        m.kind == "NODE_DONE" && m.meta.get("stop_reason").map(String::as_str) != Some("up_to_date")
    }) {
        if let (Some(node), Some(ms)) = (
            m.meta.get("node"),
            m.meta
                .get("duration_ms")
                .and_then(|d| d.parse::<u64>().ok()),
        ) {
            by_node.entry(node.as_str()).or_default().push(ms);
        }
    }
    by_node
        .into_iter()
        .map(|(node, mut ms)| {
            ms.sort_unstable();
            (node, ms[ms.len() / 2])
        })
        .collect()
}
