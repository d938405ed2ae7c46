//! Owns the plan's warning about declared `writes` it can see overlap
//! (docs/isolation.md, "Declared writes"): instances that may run at the
//! same time (neither needs the other) whose scopes may meet will be run
//! one after the other instead, which a user should know before applying.
//! One warning per pair of nodes; past [`MAX_WRITERS`] instances with
//! writes, nothing is compared.

use petgraph::algo::has_path_connecting;
use petgraph::graph::{DiGraph, NodeIndex};

use super::model::Instance;
use crate::compile::Program;
use crate::diagnostic::{Code, Diagnostic};
use crate::writes::Writes;

/// Beyond this many instances with `writes`, the pairs are not compared.
const MAX_WRITERS: usize = 2_000;

/// A warning for each pair of nodes with instances whose writes may meet
/// while they run side by side.
pub(super) fn overlaps(
    program: &Program,
    instances: &[Instance],
    graph: &DiGraph<usize, ()>,
) -> Vec<Diagnostic> {
    let writers: Vec<(usize, Writes)> = instances
        .iter()
        .enumerate()
        .filter_map(|(i, inst)| Some((i, Writes::new(&inst.workdir, &inst.writes)?)))
        .collect();
    if writers.len() > MAX_WRITERS {
        return Vec::new();
    }
    let mut warned: Vec<(&str, &str)> = Vec::new();
    let mut out = Vec::new();
    for (n, (i, a)) in writers.iter().enumerate() {
        for (j, b) in &writers[n + 1..] {
            let (ni, nj) = (&*instances[*i].node, &*instances[*j].node);
            if warned.contains(&(ni, nj)) {
                continue;
            }
            let Some((ga, gb)) = a.overlap(b) else {
                continue;
            };
            let (x, y) = (NodeIndex::new(*i), NodeIndex::new(*j));
            if has_path_connecting(graph, x, y, None) || has_path_connecting(graph, y, x, None) {
                continue;
            }
            warned.push((ni, nj));
            let message = if ni == nj {
                format!(
                    "the instances of `{ni}` declare writes that may meet (`{ga}`): they will run one at a time"
                )
            } else {
                format!(
                    "`{ni}` and `{nj}` may run at the same time and declare writes that may meet (`{ga}` and `{gb}`): their instances will run one at a time"
                )
            };
            let mut d = Diagnostic::warning(Code::WritesOverlap, message).help(
                "give each instance a scope of its own (`writes = [\"src/{{ item }}/**\"]`), or make one node need the other",
            );
            if let Some(span) = program
                .nodes
                .iter()
                .find(|p| p.id == ni)
                .and_then(|p| p.writes.first())
                .map(|g| g.span)
            {
                d = d.label(span, "declared here");
            }
            out.push(d);
        }
    }
    out
}
