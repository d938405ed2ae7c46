//! Run-time fan-out: a `for_each = { from = .. }` node becomes one job per
//! item of its source's answer when the source is done, and `needs` as
//! templates see it (a fanned-out need is the list of its instances).

use std::sync::Arc;

use minijinja::Value;

use super::{Dispatcher, State};
use crate::model::ForEach;
use crate::runner::event::Event;
use crate::runner::job::{Job, JobKind};
use crate::runner::outcome::{Outcome, Status, at_path};
use crate::stop_reason::StopReason;

impl Dispatcher<'_> {
    /// Turns a run-time fan-out into one job per item of its source's answer.
    pub(super) fn expand(&mut self, p: usize) {
        let JobKind::FanOut {
            from,
            path,
            lines,
            max_items,
            mirror,
            agent,
        } = self.jobs[p].kind.clone()
        else {
            return;
        };
        let sources = self.instances_of(from);
        let mut items: Vec<(serde_json::Value, Option<usize>)> = Vec::new();
        for &s in &sources {
            let State::Finished(o) = &self.state[s] else {
                continue;
            };
            if mirror {
                if let Some(item) = &self.jobs[s].item {
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
                            self.jobs[s].key,
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
        let base = Arc::clone(&self.jobs[p]);
        let node_id = self.shared.program.nodes[base.node].id.clone();
        self.emit_expanded(p, &items, &node_id);
        if items.is_empty() {
            self.finish(p, Outcome::ended(Status::Done, StopReason::NoItems));
            return;
        }
        let mut children = Vec::new();
        for (item, source) in items {
            let idx = self.jobs.len();
            let mut needs = base.needs.clone();
            if let Some(s) = source {
                needs.push(s);
            }
            let key: Arc<str> =
                crate::plan::expand::instance_key(&node_id, Some(&item), None).into();
            self.by_key.insert(Arc::clone(&key), idx);
            let mirrored =
                source.map(|s| (&*self.jobs[s].key, self.jobs[s].fingerprint.hash.as_str()));
            let fingerprint = Arc::new(base.fingerprint.child(&item, mirrored));
            let forced = base.forced || self.prior.forces(&key);
            self.jobs.push(Arc::new(Job {
                key,
                needs,
                item: Some(item),
                kind: JobKind::Agent(Arc::clone(&agent)),
                fingerprint,
                forced,
                ..(*base).clone()
            }));
            self.state.push(State::Waiting);
            self.waiting.push(0);
            self.dependents.push(Vec::new());
            self.parent.insert(idx, p);
            self.ready.insert(idx);
            children.push(idx);
        }
        self.unfinished.insert(p, children.len());
        self.child_failed.remove(&p);
        self.expanded.insert(p, children.clone());
        self.state[p] = State::Expanded;
    }

    pub(super) fn emit_expanded(
        &mut self,
        p: usize,
        items: &[(serde_json::Value, Option<usize>)],
        node_id: &str,
    ) {
        let instances = items
            .iter()
            .map(|(item, _)| crate::plan::expand::instance_key(node_id, Some(item), None).into())
            .collect();
        self.emit(Event::Expanded {
            key: Arc::clone(&self.jobs[p].key),
            instances,
        });
    }

    /// The instances of `node`: an expanded fan-out counts as the jobs it became.
    pub(super) fn instances_of(&self, node: usize) -> Vec<usize> {
        self.by_node[node]
            .iter()
            .flat_map(|&s| self.expanded.get(&s).cloned().unwrap_or_else(|| vec![s]))
            .collect()
    }

    /// `needs` as job `i`'s templates see it.
    pub(super) fn needs_value(&self, i: usize) -> Value {
        let job = &self.jobs[i];
        let node = &self.shared.program.nodes[job.node];
        let mut map = std::collections::BTreeMap::new();
        for (name, j) in &node.needs_by_name {
            let instances = self.instances_of(*j);
            let value_of = |s: usize| match &self.state[s] {
                State::Finished(o) => o.to_value(self.jobs[s].item.as_ref()),
                _ => Value::UNDEFINED,
            };
            let source = &self.shared.program.nodes[*j];
            let mirrored = Some(*j) == node.fan_out_source
                && matches!(node.for_each, Some(ForEach::EachOf { .. }));
            let value = if mirrored {
                instances
                    .iter()
                    .find(|&&s| self.jobs[s].item == job.item)
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
