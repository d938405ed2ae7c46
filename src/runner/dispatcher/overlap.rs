//! Owns noticing when isolated instances that ran side by side changed the
//! same files (docs/isolation.md, "Overlaps"): two instances overlap on a
//! file when both changed it against their base and neither needs the
//! other, so neither saw the other's change. Said once the apply ends, on
//! the project bus, in the summary and in `--json`, before a merge finds it
//! out as a conflict. Likewise a change outside a node's declared `writes`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::fan_out::FanOuts;
use super::graph::JobGraph;
use crate::runner::job::JobId;
use crate::runner::summary::Overlap;
use crate::stop_reason::StopReason;

/// Every overlap among the isolated instances this apply ran, grouped by
/// the instances involved, in a stable order.
pub(super) fn overlaps(graph: &JobGraph, fan_outs: &FanOuts) -> Vec<Overlap> {
    let mut by_file: BTreeMap<&str, Vec<JobId>> = BTreeMap::new();
    for j in graph.jobs.ids() {
        let Some(w) = graph
            .outcome(j)
            .filter(|o| o.stop_reason != StopReason::UpToDate)
            .and_then(|o| o.worktree.as_ref())
        else {
            continue;
        };
        for f in &w.files {
            by_file.entry(f.as_str()).or_default().push(j);
        }
    }
    let mut ancestry = Ancestry::default();
    let mut grouped: BTreeMap<BTreeSet<Arc<str>>, Vec<String>> = BTreeMap::new();
    for (file, changed_by) in by_file {
        let mut side_by_side = BTreeSet::new();
        for (n, &a) in changed_by.iter().enumerate() {
            for &b in &changed_by[n + 1..] {
                if !ancestry.reaches(graph, fan_outs, a, b)
                    && !ancestry.reaches(graph, fan_outs, b, a)
                {
                    side_by_side.insert(Arc::clone(&graph.jobs[a].key));
                    side_by_side.insert(Arc::clone(&graph.jobs[b].key));
                }
            }
        }
        if side_by_side.len() > 1 {
            grouped
                .entry(side_by_side)
                .or_default()
                .push(file.to_string());
        }
    }
    grouped
        .into_iter()
        .map(|(instances, files)| Overlap {
            instances: instances.into_iter().collect(),
            files,
        })
        .collect()
}

/// Each isolated instance this apply ran that changed files outside its
/// node's declared `writes`, with those files.
pub(super) fn outside_writes(graph: &JobGraph) -> Vec<(Arc<str>, Vec<String>)> {
    graph
        .jobs
        .ids()
        .filter_map(|j| {
            let w = graph.outcome(j)?.worktree.as_ref()?;
            (!w.outside_writes.is_empty())
                .then(|| (Arc::clone(&graph.jobs[j].key), w.outside_writes.clone()))
        })
        .collect()
}

/// What each job needs, directly or through others, found once per job.
#[derive(Debug, Default)]
struct Ancestry(HashMap<JobId, BTreeSet<JobId>>);

impl Ancestry {
    /// Whether `later` needs `earlier`, directly or not.
    fn reaches(
        &mut self,
        graph: &JobGraph,
        fan_outs: &FanOuts,
        earlier: JobId,
        later: JobId,
    ) -> bool {
        self.of(graph, fan_outs, later).contains(&earlier)
    }

    /// A run-time fan-out's placeholder stands for its expanded instances:
    /// needing it is needing them.
    fn of(&mut self, graph: &JobGraph, fan_outs: &FanOuts, j: JobId) -> &BTreeSet<JobId> {
        self.0.entry(j).or_insert_with(|| {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<JobId> = graph.jobs[j].needs.clone();
            while let Some(n) = stack.pop() {
                if seen.insert(n) {
                    stack.extend(graph.jobs[n].needs.iter().copied());
                    stack.extend(fan_outs.children_of(n).unwrap_or_default());
                }
            }
            seen
        })
    }
}
