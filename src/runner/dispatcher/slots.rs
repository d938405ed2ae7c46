//! Owns the caps on what runs at once: `--max-parallel` over every unit of
//! the apply, and each node's `max_parallel` over its agent instances,
//! with the ready instances held back for a slot of their node. Slots are
//! counted by node id, which a watch's re-plan keeps (node indices it does
//! not).

use std::collections::{HashMap, VecDeque};

use crate::runner::job::JobId;

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
}

impl Slots {
    pub(super) fn new(max_parallel: usize) -> Self {
        Self {
            max_parallel: max_parallel.max(1),
            running: 0,
            per_node: HashMap::new(),
            held: HashMap::new(),
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
        self.held.values().map(VecDeque::len).sum()
    }

    /// Every held instance (the apply is stopping: they will not start).
    pub(super) fn drain_held(&mut self) -> Vec<JobId> {
        self.held.drain().flat_map(|(_, q)| q).collect()
    }

    /// After a re-plan: `running` units still run, and these node slots
    /// are still held; nothing is held back.
    pub(super) fn recount<'n>(&mut self, running: usize, slots: impl Iterator<Item = &'n str>) {
        self.running = running;
        self.held.clear();
        self.per_node.clear();
        for node in slots {
            *self.per_node.entry(node.to_string()).or_default() += 1;
        }
    }
}
