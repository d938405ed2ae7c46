//! Owns the caps on what runs at once: `--max-parallel` over every unit of
//! the apply, each node's `max_parallel` over its agent instances, with the
//! ready instances held back for a slot of their node, and declared
//! `writes`: an instance whose scope overlaps a running instance's waits
//! for it to end (docs/isolation.md, "Declared writes"). Slots are counted
//! by node id, and writers by instance key, which a watch's re-plan keeps
//! (node indices it does not).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::runner::job::JobId;
use crate::writes::Writes;

/// Units running and the slots they hold.
#[derive(Debug)]
pub(super) struct Slots {
    max_parallel: usize,
    /// Units running: agent instances and sub-workflow checks.
    running: usize,
    /// Agent instances running, by node id.
    per_node: HashMap<String, u32>,
    /// Ready instances waiting for a slot of their node, by node id.
    held: HashMap<String, VecDeque<JobId>>,
    /// Instances running with declared writes, by key.
    writing: HashMap<Arc<str>, Arc<Writes>>,
    /// Ready instances waiting for a running writer they overlap to end.
    held_writes: Vec<JobId>,
    /// Instances that were ever held for a writer (said once each).
    told: std::collections::HashSet<JobId>,
}

impl Slots {
    pub(super) fn new(max_parallel: usize) -> Self {
        Self {
            max_parallel: max_parallel.max(1),
            running: 0,
            per_node: HashMap::new(),
            held: HashMap::new(),
            writing: HashMap::new(),
            held_writes: Vec::new(),
            told: std::collections::HashSet::new(),
        }
    }

    pub(super) fn running(&self) -> usize {
        self.running
    }

    /// Whether the apply runs as many units as it may.
    pub(super) fn full(&self) -> bool {
        self.running >= self.max_parallel
    }

    /// Whether `node` runs as many instances as its `max_parallel` allows.
    pub(super) fn node_full(&self, node: &str, cap: Option<u32>) -> bool {
        cap.is_some_and(|c| self.per_node.get(node).copied().unwrap_or(0) >= c)
    }

    /// A unit starts; an agent instance also takes a slot of its node.
    pub(super) fn take(&mut self, node: Option<&str>) {
        self.running += 1;
        if let Some(node) = node {
            *self.per_node.entry(node.to_string()).or_default() += 1;
        }
    }

    /// Keeps `job` until one of `node`'s instances ends.
    pub(super) fn hold(&mut self, node: &str, job: JobId) {
        self.held
            .entry(node.to_string())
            .or_default()
            .push_back(job);
    }

    /// A running instance whose declared writes overlap `writes`: its key
    /// and the two globs that meet.
    pub(super) fn writes_overlap(&self, writes: &Writes) -> Option<(Arc<str>, String, String)> {
        self.writing.iter().find_map(|(key, running)| {
            writes
                .overlap(running)
                .map(|(a, b)| (Arc::clone(key), a.to_string(), b.to_string()))
        })
    }

    /// Keeps `job` until a running writer ends; whether it is held for
    /// the first time.
    pub(super) fn hold_for_writes(&mut self, job: JobId) -> bool {
        self.held_writes.push(job);
        self.told.insert(job)
    }

    /// Instance `key` starts with these writes.
    pub(super) fn start_writing(&mut self, key: &Arc<str>, writes: &Arc<Writes>) {
        self.writing.insert(Arc::clone(key), Arc::clone(writes));
    }

    /// Instance `key` ended: the instances held for a writer may try again.
    pub(super) fn stop_writing(&mut self, key: &str) -> Vec<JobId> {
        if self.writing.remove(key).is_some() {
            std::mem::take(&mut self.held_writes)
        } else {
            Vec::new()
        }
    }

    /// A unit ended.
    pub(super) fn end(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    /// One of `node`'s instances gave its slot back: the instance held the
    /// longest for it, if any, may start.
    pub(super) fn release(&mut self, node: &str) -> Option<JobId> {
        if let Some(c) = self.per_node.get_mut(node) {
            *c = c.saturating_sub(1);
        }
        self.held.get_mut(node).and_then(VecDeque::pop_front)
    }

    /// How many instances are held back.
    pub(super) fn held(&self) -> usize {
        self.held.values().map(VecDeque::len).sum::<usize>() + self.held_writes.len()
    }

    /// Every held instance (the apply is stopping: they will not start).
    pub(super) fn drain_held(&mut self) -> Vec<JobId> {
        let mut out: Vec<JobId> = self.held.drain().flat_map(|(_, q)| q).collect();
        out.append(&mut self.held_writes);
        out
    }

    /// After a re-plan: `running` units still run, and these node slots
    /// are still held; nothing is held back.
    pub(super) fn recount<'n>(&mut self, running: usize, slots: impl Iterator<Item = &'n str>) {
        self.running = running;
        self.held.clear();
        self.held_writes.clear();
        self.told.clear();
        self.per_node.clear();
        for node in slots {
            *self.per_node.entry(node.to_string()).or_default() += 1;
        }
    }
}
