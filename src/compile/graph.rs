//! The dependency graph of one workflow file: `needs` (and fan-out sources)
//! resolved to local nodes, cycles reported with every node on them, and a
//! deterministic topological order (ties broken by id, so a TOML file and its
//! KDL twin order the same way).

use std::collections::{BTreeSet, HashMap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::diagnostic::{Code, Diagnostic, Diagnostics, suggestion_help};
use crate::model::{ForEach, Node, Spanned};
use crate::source::Syntax;

/// A reference from one local node to another, with where it was written.
#[derive(Debug, Clone)]
pub(super) struct Dep {
    pub to: usize,
    pub at: Spanned<String>,
}

/// Resolves every node's `needs` and fan-out source to local indices,
/// reporting unknown names. The fan-out source is an implicit need.
pub(super) fn dependencies(
    nodes: &[Node],
    syntax: Syntax,
    diags: &mut Diagnostics,
) -> Vec<Vec<Dep>> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.value.as_str(), i))
        .collect();
    let ids = || nodes.iter().map(|n| n.id.value.as_str());
    nodes
        .iter()
        .map(|n| {
            let mut deps: Vec<Dep> = Vec::new();
            let source = match &n.for_each {
                Some(ForEach::From { from, .. }) => Some((from, "for_each.from")),
                Some(ForEach::EachOf { each_of }) => Some((each_of, "for_each.each_of")),
                _ => None,
            };
            let merged = n
                .merge
                .iter()
                .flat_map(|m| &m.from)
                .map(|s| (s, "merge.from"));
            let named = n
                .needs
                .iter()
                .map(|s| (s, "needs"))
                .chain(source)
                .chain(merged);
            for (name, via) in named {
                match index.get(name.value.as_str()) {
                    Some(&to) => {
                        if !deps.iter().any(|d| d.to == to) {
                            deps.push(Dep {
                                to,
                                at: name.clone(),
                            });
                        }
                    }
                    None => diags.push(
                        Diagnostic::error(
                            Code::UnknownNeed,
                            format!(
                                "node `{}` {} `{}`, which is not a node of this workflow",
                                n.id.value,
                                match via {
                                    "needs" => "needs",
                                    "merge.from" => "merges",
                                    _ => "fans out from",
                                },
                                name.value
                            ),
                        )
                        .label(name.span, "no such node")
                        .maybe_help(
                            suggestion_help(&name.value, ids(), "the nodes are").map(|h| {
                                if via == "needs" {
                                    h
                                } else {
                                    format!("{h} ({} is `{}`)", "the key", syntax.spell(via))
                                }
                            }),
                        ),
                    ),
                }
            }
            deps
        })
        .collect()
}

/// Reports every cycle; returns false when there is one.
pub(super) fn check_cycles(nodes: &[Node], deps: &[Vec<Dep>], diags: &mut Diagnostics) -> bool {
    let mut g = DiGraph::<usize, ()>::with_capacity(nodes.len(), deps.iter().map(Vec::len).sum());
    let idx: Vec<NodeIndex> = (0..nodes.len()).map(|i| g.add_node(i)).collect();
    for (i, ds) in deps.iter().enumerate() {
        for d in ds {
            g.add_edge(idx[i], idx[d.to], ());
        }
    }
    let mut ok = true;
    for scc in tarjan_scc(&g) {
        let first = scc[0];
        if scc.len() == 1 && !g.contains_edge(first, first) {
            continue;
        }
        ok = false;
        let members: BTreeSet<usize> = scc.iter().map(|n| g[*n]).collect();
        let path = cycle_path(deps, &members);
        let names: Vec<&str> = path.iter().map(|&i| nodes[i].id.value.as_str()).collect();
        let mut d = Diagnostic::error(
            Code::Cycle,
            format!("dependency cycle: {}", names.join(" -> ")),
        );
        for w in path.windows(2) {
            if let Some(dep) = deps[w[0]].iter().find(|d| d.to == w[1]) {
                d = d.label(
                    dep.at.span,
                    format!(
                        "`{}` needs `{}`",
                        nodes[w[0]].id.value, nodes[w[1]].id.value
                    ),
                );
            }
        }
        diags.push(d.help("a node cannot wait for itself: remove one of these needs"));
    }
    ok
}

/// A closed walk through the strongly connected `members`, starting at the
/// smallest index: `[a, b, c, a]`.
fn cycle_path(deps: &[Vec<Dep>], members: &BTreeSet<usize>) -> Vec<usize> {
    let Some(&start) = members.first() else {
        return Vec::new();
    };
    // Breadth-first search back to `start`, inside the component only.
    let mut prev: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for d in &deps[n] {
            if d.to == start {
                let mut path = vec![n];
                while let Some(&p) = prev.get(path.last().unwrap_or(&start)) {
                    path.push(p);
                }
                path.reverse();
                if path.first() != Some(&start) {
                    path.insert(0, start);
                }
                path.push(start);
                return path;
            }
            if members.contains(&d.to) && !prev.contains_key(&d.to) && d.to != start {
                prev.insert(d.to, n);
                queue.push_back(d.to);
            }
        }
    }
    vec![start, start]
}

/// Kahn's algorithm; among ready nodes the smallest id goes first.
pub(super) fn topo_order(nodes: &[Node], deps: &[Vec<Dep>]) -> Vec<usize> {
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, ds) in deps.iter().enumerate() {
        for d in ds {
            dependents[d.to].push(i);
        }
    }
    let mut ready: BTreeSet<(&str, usize)> = (0..nodes.len())
        .filter(|&i| waiting[i] == 0)
        .map(|i| (nodes[i].id.value.as_str(), i))
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some((_, i)) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.insert((nodes[j].id.value.as_str(), j));
            }
        }
    }
    order
}
