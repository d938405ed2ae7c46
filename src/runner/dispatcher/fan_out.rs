//! Run-time fan-out: a `for_each = { from = ... }` node becomes one job per
//! item of its source's answer when the source is done, and is done itself
//! when they all are; and `needs` as templates see it (a fanned-out need is
//! the list of its instances).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use minijinja::Value;

use super::graph::{JobGraph, State};
use crate::compile::{NodeId, Program};
use crate::incremental::prior::Prior;
use crate::model::ForEach;
use crate::runner::job::{FanOutJob, Job, JobId};
use crate::runner::outcome::{Outcome, Status, at_path};
use crate::stop_reason::StopReason;

/// The run-time fan-outs that became jobs.
#[derive(Debug, Default)]
pub(super) struct FanOuts {
    /// The fan-out each instance belongs to.
    parent: HashMap<JobId, JobId>,
    /// The instances each fan-out became.
    children: HashMap<JobId, Vec<JobId>>,
    /// Each fan-out's instances not ended yet.
    unfinished: HashMap<JobId, usize>,
    /// Fan-outs with a failed instance.
    failed: HashSet<JobId>,
}

impl FanOuts {
    pub(super) fn parent_of(&self, i: JobId) -> Option<JobId> {
        self.parent.get(&i).copied()
    }

    /// The instances fan-out `p` became, once it did.
    pub(super) fn children_of(&self, p: JobId) -> Option<&[JobId]> {
        self.children.get(&p).map(Vec::as_slice)
    }

    fn expanded(&mut self, p: JobId, children: Vec<JobId>) {
        for &c in &children {
            self.parent.insert(c, p);
        }
        self.unfinished.insert(p, children.len());
        self.failed.remove(&p);
        self.children.insert(p, children);
    }

    /// One of `p`'s instances ended; when it was the last, the outcome of
    /// the whole fan-out.
    pub(super) fn child_ended(&mut self, p: JobId, failed: bool) -> Option<Outcome> {
        let left = self.unfinished.entry(p).or_insert(1);
        *left = left.saturating_sub(1);
        if failed {
            self.failed.insert(p);
        }
        (*left == 0).then(|| {
            if self.failed.contains(&p) {
                Outcome::ended(Status::Failed, StopReason::InstanceFailed)
            } else {
                Outcome::ended(Status::Done, StopReason::Done)
            }
        })
    }

    /// Forgets what `p` became (a looping sub-workflow runs it again); the
    /// instances it had.
    pub(super) fn forget(&mut self, p: JobId) -> Vec<JobId> {
        let children = self.children.remove(&p).unwrap_or_default();
        for c in &children {
            self.parent.remove(c);
        }
        children
    }
}

/// What a run-time fan-out came to when its source ended.
#[derive(Debug)]
pub(super) enum Expansion {
    /// Its source's answer cannot be fanned out: it ends with this.
    Ended(Box<Outcome>),
    /// It became these instances, now ready (none: it is done with no items).
    Became(Vec<Arc<str>>),
}

/// Turns run-time fan-out `p` into one job per item of its source's answer.
pub(super) fn expand(
    p: JobId,
    spec: &FanOutJob,
    graph: &mut JobGraph,
    fan_outs: &mut FanOuts,
    program: &Program,
    prior: &Prior,
) -> Expansion {
    let FanOutJob {
        from,
        ref path,
        lines,
        max_items,
        mirror,
        agent: _,
    } = *spec;
    let mut items: Vec<(serde_json::Value, Option<JobId>)> = Vec::new();
    for s in instances_of(graph, fan_outs, from) {
        let Some(o) = graph.outcome(s) else {
            continue;
        };
        if mirror {
            if let Some(item) = &graph.jobs[s].item {
                items.push((item.clone(), Some(s)));
            }
            continue;
        }
        if o.status != Status::Done {
            continue;
        }
        if lines {
            items.extend(
                o.output
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| (serde_json::Value::from(l), None)),
            );
        } else if let Some(path) = path.as_deref() {
            let root = serde_json::json!({
                "json": o.json.clone().unwrap_or(serde_json::Value::Null),
                "output": o.output,
            });
            match at_path(&root, path) {
                Some(serde_json::Value::Array(a)) => {
                    items.extend(a.iter().cloned().map(|v| (v, None)));
                }
                other => {
                    let mut out = Outcome::ended(Status::Failed, StopReason::FanOutSource);
                    out.error = Some(format!(
                        "`{path}` of `{}` is {}, not a list",
                        graph.jobs[s].key,
                        other.map_or("missing".to_string(), ToString::to_string)
                    ));
                    return Expansion::Ended(Box::new(out));
                }
            }
        }
    }
    if items.len() > max_items as usize {
        let mut out = Outcome::ended(Status::Failed, StopReason::MaxItems);
        out.error = Some(format!(
            "{} items, more than max_items = {max_items}",
            items.len()
        ));
        return Expansion::Ended(Box::new(out));
    }
    let base = Arc::clone(&graph.jobs[p]);
    let node_id = &program.node(base.node).id;
    let labels = match key_names(program, base.node, &items) {
        Ok(Some(named)) => {
            let values: Vec<&serde_json::Value> = items.iter().map(|(item, _)| item).collect();
            crate::plan::expand::labels_named(&values, &named)
        }
        Ok(None) => crate::plan::expand::labels(items.iter().map(|(item, _)| item)),
        Err(why) => {
            let mut out = Outcome::ended(Status::Failed, StopReason::RenderError);
            out.error = Some(why);
            return Expansion::Ended(Box::new(out));
        }
    };
    let keys: Vec<Arc<str>> = labels
        .iter()
        .map(|label| crate::plan::expand::instance_key(node_id, Some(label), None).into())
        .collect();
    // Two items with one key would be one instance twice, sharing a task
    // folder: the fan-out fails, saying which.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        if let Some(first) = seen.insert(key, i) {
            let mut out = Outcome::ended(Status::Failed, StopReason::FanOutSource);
            out.error = Some(format!(
                "items {} and {} give one instance, `{key}`: each instance needs an item of its own (remove duplicate lines or list entries from the source's answer)",
                first + 1,
                i + 1
            ));
            return Expansion::Ended(Box::new(out));
        }
    }
    if items.is_empty() {
        return Expansion::Became(keys);
    }
    // Each item's own instance: what its templated fields (workdir, env,
    // stop, vars, an agent's model) render to for it. One that cannot be
    // rendered fails the fan-out before any item runs.
    let mut jobs = Vec::with_capacity(items.len());
    for ((item, _), key) in items.iter().zip(&keys) {
        let made = crate::plan::instance_of_item(program, base.node, item)
            .map_err(|diags| {
                diags
                    .iter()
                    .find(|d| d.is_error())
                    .map_or_else(|| "cannot render it".to_string(), |d| d.message.clone())
            })
            .and_then(|inst| {
                crate::runner::build::item_job(program, &base, spec, &inst)
                    .map_err(|e| e.to_string())
            });
        match made {
            Ok(job) => jobs.push(job),
            Err(why) => {
                let mut out = Outcome::ended(Status::Failed, StopReason::RenderError);
                out.error = Some(format!("`{key}`: {why}"));
                return Expansion::Ended(Box::new(out));
            }
        }
    }
    let mut children = Vec::new();
    for (((item, source), key), job) in items.into_iter().zip(keys.iter().cloned()).zip(jobs) {
        let mut needs = base.needs.clone();
        if let Some(s) = source {
            needs.push(s);
        }
        let mirrored = source.map(|s| {
            let job = &graph.jobs[s];
            (&*job.key, job.fingerprint.hash.as_str())
        });
        let fingerprint = Arc::new(base.fingerprint.child(&item, mirrored));
        let forced = base.forced || prior.forces(&key);
        let child = graph.push(Job {
            key,
            needs,
            fingerprint,
            forced,
            ..job
        });
        // Its needs are the fan-out's (ended) and the mirrored source
        // instance (ended): it is ready now.
        graph.waiting[child] = 0;
        graph.ready.insert(child);
        children.push(child);
    }
    fan_outs.expanded(p, children);
    graph.state[p] = State::Expanded;
    Expansion::Became(keys)
}

/// What the node's `for_each.key` template makes of each item, when it has
/// one; why one cannot be rendered.
fn key_names(
    program: &Program,
    node: NodeId,
    items: &[(serde_json::Value, Option<JobId>)],
) -> Result<Option<Vec<String>>, String> {
    let n = program.node(node);
    let Some(ForEach::From { key: Some(key), .. }) = &n.for_each else {
        return Ok(None);
    };
    let scope = &program.scopes[n.scope];
    items
        .iter()
        .map(|(item, _)| {
            let ctx = minijinja::context! {
                item => crate::prompt::context(item),
                params => crate::prompt::context(&serde_json::Value::Object(scope.params.clone())),
                node => n.id.as_str(),
                workflow => scope.workflow.as_str(),
            };
            scope
                .templates
                .render_str(&key.value, ctx)
                .map_err(|e| format!("`key` of item {item}: {}", crate::prompt::error_detail(&e)))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The instances of `node`: an expanded fan-out counts as the jobs it became.
pub(super) fn instances_of(graph: &JobGraph, fan_outs: &FanOuts, node: NodeId) -> Vec<JobId> {
    graph
        .of_node(node)
        .iter()
        .flat_map(|&s| {
            fan_outs
                .children_of(s)
                .map_or_else(|| vec![s], <[JobId]>::to_vec)
        })
        .collect()
}

/// The branches of job `i`'s isolated needs that are done, in `needs`
/// order, each with its instance: the work its worktree starts from
/// (docs/isolation.md, "Fan-in"). A branch's name follows from its
/// instance, so one that is up to date is found as one that just ran.
pub(super) fn needs_branches(
    graph: &JobGraph,
    fan_outs: &FanOuts,
    program: &Program,
    i: JobId,
) -> Vec<crate::runner::merge::Source> {
    let job = &graph.jobs[i];
    if job.isolation.is_none() {
        return Vec::new();
    }
    let node = program.node(job.node);
    let mut out = Vec::new();
    for (_, j) in &node.needs_by_name {
        let mirrored = Some(*j) == node.fan_out_source
            && matches!(node.for_each, Some(ForEach::EachOf { .. }));
        for s in instances_of(graph, fan_outs, *j) {
            let need = &graph.jobs[s];
            if mirrored && need.item != job.item {
                continue;
            }
            let Some(o) = graph.outcome(s).filter(|o| o.status == Status::Done) else {
                continue;
            };
            if let Some(iso) = &need.isolation {
                out.push(crate::runner::merge::Source {
                    instance: Arc::clone(&need.key),
                    branch: crate::isolation::names::branch_name(&iso.workflow, &need.key),
                    status: o.status,
                    stop_reason: o.stop_reason.to_string(),
                    task_dir: o.task_dir.clone(),
                });
            }
        }
    }
    out
}

/// The instances of a merge's nodes, in order, as they ended, each with
/// its branch (docs/isolation.md, "Merge nodes").
pub(super) fn merge_sources(
    graph: &JobGraph,
    fan_outs: &FanOuts,
    merge: &crate::runner::job::MergeJob,
) -> Vec<crate::runner::merge::Source> {
    merge
        .from
        .iter()
        .flat_map(|&n| instances_of(graph, fan_outs, n))
        .filter_map(|s| {
            let need = &graph.jobs[s];
            let iso = need.isolation.as_ref()?;
            let outcome = graph.outcome(s);
            Some(crate::runner::merge::Source {
                instance: Arc::clone(&need.key),
                branch: crate::isolation::names::branch_name(&iso.workflow, &need.key),
                status: outcome.map_or(Status::Skipped, |o| o.status),
                stop_reason: outcome
                    .map(|o| o.stop_reason.to_string())
                    .unwrap_or_default(),
                task_dir: outcome.and_then(|o| o.task_dir.clone()),
            })
        })
        .collect()
}

/// `needs` as job `i`'s templates see it.
pub(super) fn needs_value(
    graph: &JobGraph,
    fan_outs: &FanOuts,
    program: &Program,
    i: JobId,
) -> Value {
    let job = &graph.jobs[i];
    let node = program.node(job.node);
    let mut map = std::collections::BTreeMap::new();
    for (name, j) in &node.needs_by_name {
        let instances = instances_of(graph, fan_outs, *j);
        let value_of = |s: JobId| match graph.outcome(s) {
            Some(o) => o.to_value(graph.jobs[s].item.as_ref()),
            None => Value::UNDEFINED,
        };
        let source = program.node(*j);
        let mirrored = Some(*j) == node.fan_out_source
            && matches!(node.for_each, Some(ForEach::EachOf { .. }));
        let value = if mirrored {
            instances
                .iter()
                .find(|&&s| graph.jobs[s].item == job.item)
                .map_or(Value::UNDEFINED, |&s| value_of(s))
        } else if source.for_each.is_some() || !source.matrix.is_empty() {
            Value::from(instances.iter().map(|&s| value_of(s)).collect::<Vec<_>>())
        } else {
            instances.first().map_or(Value::UNDEFINED, |&s| value_of(s))
        };
        map.insert(name.clone(), value);
    }
    Value::from(map)
}
