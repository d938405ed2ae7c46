//! Run-time fan-out: a `for_each = { from = ... }` node becomes one job per
//! item of its source's answer when the source is done, and is done itself
//! when they all are; and `needs` as templates see it (a fanned-out need is
//! the list of its instances).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use minijinja::Value;

use super::Dispatcher;
use super::graph::State;
use crate::compile::NodeId;
use crate::model::ForEach;
use crate::runner::event::Event;
use crate::runner::job::{Job, JobId, JobKind};
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

impl Dispatcher<'_> {
    /// Turns a run-time fan-out into one job per item of its source's answer.
    pub(super) fn expand(&mut self, p: JobId) {
        let JobKind::FanOut {
            from,
            path,
            lines,
            max_items,
            mirror,
            agent,
        } = self.graph.jobs[p].kind.clone()
        else {
            return;
        };
        let mut items: Vec<(serde_json::Value, Option<JobId>)> = Vec::new();
        for s in self.instances_of(from) {
            let Some(o) = self.graph.outcome(s) else {
                continue;
            };
            if mirror {
                if let Some(item) = &self.graph.jobs[s].item {
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
            } else if let Some(path) = &path {
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
                            self.graph.jobs[s].key,
                            other.map_or("missing".to_string(), ToString::to_string)
                        ));
                        self.finish(p, out);
                        return;
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
            self.finish(p, out);
            return;
        }
        let base = Arc::clone(&self.graph.jobs[p]);
        let node_id = self.shared.program.node(base.node).id.clone();
        let keys: Vec<Arc<str>> = items
            .iter()
            .map(|(item, _)| crate::plan::expand::instance_key(&node_id, Some(item), None).into())
            .collect();
        self.emit(&Event::Expanded {
            key: Arc::clone(&base.key),
            instances: keys.clone(),
        });
        if items.is_empty() {
            self.finish(p, Outcome::ended(Status::Done, StopReason::NoItems));
            return;
        }
        let mut children = Vec::new();
        for ((item, source), key) in items.into_iter().zip(keys) {
            let mut needs = base.needs.clone();
            if let Some(s) = source {
                needs.push(s);
            }
            let mirrored = source.map(|s| {
                let job = &self.graph.jobs[s];
                (&*job.key, job.fingerprint.hash.as_str())
            });
            let fingerprint = Arc::new(base.fingerprint.child(&item, mirrored));
            let forced = base.forced || self.prior.forces(&key);
            let child = self.graph.push(Job {
                key,
                needs,
                item: Some(item),
                kind: JobKind::Agent(Arc::clone(&agent)),
                fingerprint,
                forced,
                ..(*base).clone()
            });
            // Its needs are the fan-out's (ended) and the mirrored source
            // instance (ended): it is ready now.
            self.graph.waiting[child] = 0;
            self.graph.ready.insert(child);
            children.push(child);
        }
        self.fan_outs.expanded(p, children);
        self.graph.state[p] = State::Expanded;
    }

    /// The instances of `node`: an expanded fan-out counts as the jobs it became.
    pub(super) fn instances_of(&self, node: NodeId) -> Vec<JobId> {
        self.graph
            .of_node(node)
            .iter()
            .flat_map(|&s| {
                self.fan_outs
                    .children_of(s)
                    .map_or_else(|| vec![s], <[JobId]>::to_vec)
            })
            .collect()
    }

    /// `needs` as job `i`'s templates see it.
    pub(super) fn needs_value(&self, i: JobId) -> Value {
        let job = &self.graph.jobs[i];
        let program = &self.shared.program;
        let node = program.node(job.node);
        let mut map = std::collections::BTreeMap::new();
        for (name, j) in &node.needs_by_name {
            let instances = self.instances_of(*j);
            let value_of = |s: JobId| match self.graph.outcome(s) {
                Some(o) => o.to_value(self.graph.jobs[s].item.as_ref()),
                None => Value::UNDEFINED,
            };
            let source = program.node(*j);
            let mirrored = Some(*j) == node.fan_out_source
                && matches!(node.for_each, Some(ForEach::EachOf { .. }));
            let value = if mirrored {
                instances
                    .iter()
                    .find(|&&s| self.graph.jobs[s].item == job.item)
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
}
