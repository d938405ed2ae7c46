//! `plan --dot`: the instance DAG as Graphviz.

use std::fmt::Write;

use petgraph::visit::EdgeRef;

use super::{InstanceKind, Plan};

/// Graphviz text: one box per agent instance, a diamond per gate, a dashed box
/// for run-time fan-out; edges point from a need to the instance waiting for it.
pub fn to_dot(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&plan.workflow));
    let _ = writeln!(
        out,
        "  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];"
    );
    for (i, inst) in plan.instances.iter().enumerate() {
        let (shape, label) = match &inst.kind {
            InstanceKind::Agent { agent, stop, .. } => (
                "box",
                format!(
                    "{}\\n{} · max {}",
                    inst.key, agent.name, stop.max_iterations
                ),
            ),
            InstanceKind::Gate { .. } => ("diamond", inst.key.to_string()),
            InstanceKind::Merge { from, .. } => (
                "invhouse",
                format!("{}\\nmerge {}", inst.key, from.join(", ")),
            ),
            InstanceKind::FanOut {
                from, max_items, ..
            } => (
                "box, style=dashed",
                format!("{}\\nfrom {from} (≤ {max_items})", inst.key),
            ),
        };
        let _ = writeln!(out, "  n{i} [label={}, shape={shape}];", quote(&label));
    }
    for e in plan.graph.edge_references() {
        let _ = writeln!(
            out,
            "  n{} -> n{};",
            plan.graph[e.source()],
            plan.graph[e.target()]
        );
    }
    out.push_str("}\n");
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\\\""))
}
