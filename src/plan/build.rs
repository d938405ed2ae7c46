//! Expands a program into instances, node by node in dependency order.

use std::sync::Arc;

use minijinja::{Value, context};
use petgraph::graph::DiGraph;

use super::expand::{glob_items, instance_key, matrix_combos};
use super::limits::{group_iterations, stop_plan, worst_case};
use super::model::{
    AgentRef, GroupPlan, Instance, InstanceKind, IsolationPlan, MergeResolver, Plan, StopPlan,
    SuccessCommand,
};
use crate::compile::{Action, Locator, Node, NodeId, Program};
use crate::diagnostic::{Code, Diagnostic, Diagnostics, suggestion_help};
use crate::model::{Agent, ForEach, Isolation, OutputFormat, Spanned};
use crate::paths::{display_rel, normalize, rebase};
use crate::prompt::{self, Placeholder, is_templated};
use crate::source::{Sources, Span};

/// The most instances a plan may have (docs/workflow-format.md, "Size caps"):
/// a plan is built and checked before anything runs, so its size must stay
/// within what `validate`, `plan` and `watch` handle in seconds.
const MAX_INSTANCES: usize = 100_000;

/// The most `needs` links between instances a plan may have: a node of n
/// instances that needs a node of m has n × m of them.
const MAX_LINKS: usize = 2_000_000;

/// What to include.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Render each instance's first prompt into the plan.
    pub show_prompts: bool,
    /// The runs root: never walked for `for_each` globs (docs/run-store.md).
    pub runs_root: Option<std::path::PathBuf>,
}

/// One static or run-time instance of a node, before it is written out.
#[derive(Debug, Clone)]
struct Slot {
    item: Option<serde_json::Value>,
    /// Index into the plan's instances.
    at: usize,
}

/// A static node's instances by item key, for the nodes that mirror it.
#[derive(Debug, Default)]
struct ItemIndex {
    /// Item keys in the order their items first appear.
    order: Vec<String>,
    /// Positions in the node's slots of the instances of each item.
    slots: std::collections::HashMap<String, Vec<usize>>,
}

#[derive(Debug)]
struct Planner<'a> {
    program: &'a Program,
    sources: &'a mut Sources,
    diags: Diagnostics,
    instances: Vec<Instance>,
    slots: Vec<Vec<Slot>>,
    runtime: Vec<bool>,
    env: Value,
    /// Each scope's params as a template value, converted once.
    params: Vec<Value>,
    needs_cache: std::collections::HashMap<usize, Value>,
    /// The agent and stop plan every instance of the current node shares.
    shared: Option<(Arc<AgentRef>, bool, Arc<StopPlan>)>,
    node_id: Arc<str>,
    /// DAG edges, from a needed instance to the one waiting for it.
    edges: Vec<(usize, usize)>,
    show_prompts: bool,
    runs_root: Option<std::path::PathBuf>,
    /// Nodes a render of which ran out of fuel.
    out_of_fuel: std::collections::HashSet<String>,
    /// Mirrored nodes' instances by item, by node index.
    items_of: std::collections::HashMap<usize, ItemIndex>,
    /// Rendering a run-time fan-out's instance: `item` is a stand-in.
    item_stand_in: bool,
    /// The next instance's item as its key reads, unique in its list.
    item_label: Option<String>,
    /// Making one run-time item's instance (`instance_of_item`): no needs,
    /// no prompt.
    child: bool,
    /// What the last prompt rendered read, shared by the instances whose
    /// renders read the same.
    reads: Option<Arc<prompt::Reads>>,
    /// Each `for_each` glob expanded: its folder and rendered pattern.
    globs: Vec<(std::path::PathBuf, String)>,
}

/// Expands `program`; diagnostics are the problems only visible per instance
/// (templated agent names, render errors, empty globs).
pub fn plan(program: &Program, sources: &mut Sources, options: PlanOptions) -> (Plan, Diagnostics) {
    let mut p = Planner::new(program, sources, options);
    for (i, node) in program.nodes.iter().enumerate() {
        p.node(i, node);
    }
    p.finish()
}

/// One item's instance of a run-time fan-out node, made when its source is
/// done: its workdir, `env`, `inputs`, agents (and their `model`), stop
/// conditions and `vars` rendered for the item, as the plan renders a
/// static item's. Its needs and prompt are the runner's. The errors are
/// those a plan would report for such an item.
pub(crate) fn instance_of_item(
    program: &Program,
    node: NodeId,
    item: &serde_json::Value,
) -> Result<Instance, Vec<Diagnostic>> {
    let mut sources = Sources::new();
    let mut p = Planner::new(program, &mut sources, PlanOptions::default());
    p.child = true;
    let node = program.node(node);
    p.node_id = Arc::from(node.id.as_str());
    let (workdir, _) = p.workdir(node, Some(item), None);
    let instance = p.instance(node, Some(item), None, &workdir, false);
    if p.diags.has_errors() {
        Err(p.diags.into_vec())
    } else {
        Ok(instance)
    }
}

impl<'a> Planner<'a> {
    fn new(program: &'a Program, sources: &'a mut Sources, options: PlanOptions) -> Self {
        Planner {
            program,
            sources,
            diags: Diagnostics::new(),
            instances: Vec::new(),
            slots: Vec::with_capacity(program.nodes.len()),
            runtime: Vec::with_capacity(program.nodes.len()),
            env: prompt::env_value(std::env::vars(), &program.secret_names()),
            params: program
                .scopes
                .iter()
                .map(|s| prompt::context(&serde_json::Value::Object(s.params.clone())))
                .collect(),
            needs_cache: std::collections::HashMap::new(),
            shared: None,
            node_id: Arc::from(""),
            edges: Vec::new(),
            show_prompts: options.show_prompts,
            runs_root: options.runs_root,
            out_of_fuel: std::collections::HashSet::new(),
            items_of: std::collections::HashMap::new(),
            item_stand_in: false,
            item_label: None,
            reads: None,
            child: false,
            globs: Vec::new(),
        }
    }

    fn finish(mut self) -> (Plan, Diagnostics) {
        let p = &mut self;
        let program = p.program;
        let mut graph = DiGraph::with_capacity(p.instances.len(), p.edges.len());
        let idx: Vec<_> = (0..p.instances.len()).map(|i| graph.add_node(i)).collect();
        for &(from, to) in &p.edges {
            graph.add_edge(idx[from], idx[to], ());
        }
        for d in super::writes::overlaps(program, &p.instances, &graph) {
            p.push(d);
        }
        let worst_case = worst_case(program, &p.instances);
        let success = p.success_commands();
        let sub_workflows = program
            .groups
            .iter()
            .map(|g| GroupPlan {
                id: g.id.clone(),
                file: g.file.clone(),
                result: program
                    .nodes
                    .get(g.result.index())
                    .map(|n| n.id.clone())
                    .unwrap_or_default(),
                max_iterations: group_iterations(g.stop.as_ref()),
                success: g.success.clone(),
            })
            .collect();
        let plan = Plan {
            format_version: 1,
            workflow: program.name.clone(),
            project: program.project.clone(),
            params: program
                .scopes
                .first()
                .map(|s| s.params.clone())
                .unwrap_or_default(),
            instances: std::mem::take(&mut p.instances),
            sub_workflows,
            success,
            worst_case,
            graph,
            globs: std::mem::take(&mut p.globs),
        };
        (plan, std::mem::take(&mut p.diags))
    }
}

impl Planner<'_> {
    /// `[success]` commands rendered over the entry file's params, run in its
    /// default workdir so that `go test ./...` tests the project, not the
    /// folder the workflow file sits in.
    fn success_commands(&mut self) -> Vec<SuccessCommand> {
        let Some(entry) = self.program.nodes.first().map(|n| Node {
            scope: 0,
            ..n.clone()
        }) else {
            return Vec::new();
        };
        let workdir = match &self.program.success_workdir {
            Some(w) => {
                let text = self
                    .render(&entry, &w.value, w.span, None, None)
                    .unwrap_or_else(|| w.value.clone());
                display_rel(&normalize(std::path::Path::new(&text)))
            }
            None => ".".to_string(),
        };
        self.program
            .success
            .iter()
            .map(|c| SuccessCommand {
                command: self
                    .render(&entry, &c.value, c.span, None, None)
                    .unwrap_or_else(|| c.value.clone()),
                workdir: workdir.clone(),
            })
            .collect()
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn node(&mut self, i: usize, node: &Node) {
        self.shared = None;
        self.node_id = Arc::from(node.id.as_str());
        let scope = &self.program.scopes[node.scope];
        // A templated workdir may read the item: it is rendered per
        // instance. A glob looks in the node's workdir, so that one is
        // rendered without an item.
        let per_instance = node
            .workdir
            .as_ref()
            .is_some_and(|(w, _)| is_templated(&w.value))
            && !matches!(node.for_each, Some(ForEach::Glob { .. }));
        let (workdir, workdir_local) = if per_instance {
            // Not used: each instance has its own.
            (Arc::from("."), String::new())
        } else {
            self.workdir(node, None, None)
        };
        let mut runtime = false;
        let items: Vec<Option<serde_json::Value>> = match &node.for_each {
            None => vec![None],
            Some(ForEach::Items(list)) => list
                .iter()
                .map(|v| match v.value.as_str() {
                    Some(s) if is_templated(s) => Some(serde_json::Value::from(
                        self.render(node, s, v.span, None, None)
                            .unwrap_or_else(|| s.to_string()),
                    )),
                    _ => Some(v.value.clone()),
                })
                .collect(),
            Some(ForEach::Glob { glob }) => {
                let pattern = self
                    .render(node, &glob.value, glob.span, None, None)
                    .unwrap_or_else(|| glob.value.clone());
                let base = normalize(&scope.dir.join(&workdir_local));
                self.globs.push((base.clone(), pattern.clone()));
                match glob_items(&base, &pattern, self.runs_root.as_deref()) {
                    Ok(found) if !found.is_empty() => found
                        .into_iter()
                        .map(|f| Some(serde_json::Value::from(f)))
                        .collect(),
                    Ok(_) => {
                        self.push(
                            Diagnostic::warning(
                                Code::EmptyFanOut,
                                format!(
                                    "`{pattern}` matches no file in {workdir}: node `{}` has no instances",
                                    node.id
                                ),
                            )
                            .label(glob.span, "matches nothing")
                            .help("the glob is relative to the node's workdir; check both"),
                        );
                        Vec::new()
                    }
                    Err(why) => {
                        self.push(
                            Diagnostic::error(
                                Code::FanOut,
                                format!("cannot expand `{pattern}`: {why}"),
                            )
                            .label(glob.span, "this glob"),
                        );
                        Vec::new()
                    }
                }
            }
            Some(ForEach::From { .. }) => {
                runtime = true;
                Vec::new()
            }
            Some(ForEach::EachOf { .. }) => match node.fan_out_source {
                // One instance per item of the source: a source with a matrix
                // has several instances of one item, which one mirror needs.
                Some(src) if !self.runtime[src.index()] => {
                    self.index_items(src.index());
                    let index = &self.items_of[&src.index()];
                    let slots = &self.slots[src.index()];
                    index
                        .order
                        .iter()
                        .map(|k| slots[index.slots[k][0]].item.clone())
                        .collect()
                }
                _ => {
                    runtime = true;
                    Vec::new()
                }
            },
        };
        if let Some(ForEach::Items(list)) = &node.for_each {
            let written: Vec<(Option<&serde_json::Value>, Span)> = items
                .iter()
                .zip(list)
                .map(|(item, v)| (item.as_ref(), v.span))
                .collect();
            self.duplicates(node, "`for_each`", "item", &written);
        }
        let mut axes: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
        for (k, vs) in &node.matrix {
            let values: Vec<serde_json::Value> = vs
                .iter()
                .map(|v| match v.value.as_str() {
                    Some(s) => serde_json::Value::from(
                        self.render(node, s, v.span, None, None)
                            .unwrap_or_else(|| s.to_string()),
                    ),
                    None => v.value.clone(),
                })
                .collect();
            let written: Vec<(Option<&serde_json::Value>, Span)> = values
                .iter()
                .zip(vs)
                .map(|(value, v)| (Some(value), v.span))
                .collect();
            self.duplicates(
                node,
                &format!("matrix axis `{}`", k.value),
                "value",
                &written,
            );
            axes.push((k.value.clone(), values));
        }
        // Counted before anything is built, so that a matrix of ten axes of
        // ten values is refused at once rather than expanded.
        let combos_len = axes
            .iter()
            .map(|(_, v)| v.len())
            .fold(1usize, usize::saturating_mul);
        let count = if runtime {
            1
        } else {
            items.len().saturating_mul(combos_len)
        };
        let combos = if self.within_caps(node, count, items.len(), combos_len) {
            matrix_combos(&axes)
        } else {
            Vec::new()
        };
        let mut slots = Vec::new();
        if runtime {
            let at = self.instances.len();
            // Its items are known at run time: `item` is a stand-in here,
            // and each item's instance renders its own (`instance_of_item`).
            self.item_stand_in = true;
            let workdir = if per_instance {
                self.workdir(node, None, None).0
            } else {
                Arc::clone(&workdir)
            };
            let inst = self.instance(node, None, None, &workdir, true);
            self.item_stand_in = false;
            self.instances.push(inst);
            slots.push(Slot { item: None, at });
        } else {
            let labels = super::expand::labels(items.iter().flatten());
            let mut labels = labels.into_iter();
            for item in &items {
                let label = item.as_ref().and_then(|_| labels.next());
                for combo in &combos {
                    self.item_label.clone_from(&label);
                    let matrix = (!combo.is_empty()).then(|| combo.clone());
                    let at = self.instances.len();
                    let workdir = if per_instance {
                        self.workdir(node, item.as_ref(), matrix.as_ref()).0
                    } else {
                        Arc::clone(&workdir)
                    };
                    let inst = self.instance(node, item.as_ref(), matrix.as_ref(), &workdir, false);
                    self.instances.push(inst);
                    slots.push(Slot {
                        item: item.clone(),
                        at,
                    });
                }
            }
        }
        debug_assert_eq!(self.slots.len(), i);
        self.slots.push(slots);
        self.runtime.push(runtime);
    }

    /// The workdir of an instance, relative to the entry file's folder and
    /// to the node's own file. It is relative to the file that wrote it (a
    /// sub-workflow may inherit its parent's); without one it is the entry
    /// file's folder.
    fn workdir(
        &mut self,
        node: &Node,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> (Arc<str>, String) {
        let (text, origin) = match &node.workdir {
            Some((w, origin)) => {
                let ctx_node = Node {
                    scope: *origin,
                    ..node.clone()
                };
                (
                    self.render(&ctx_node, &w.value, w.span, item, matrix)
                        .unwrap_or_else(|| w.value.clone()),
                    *origin,
                )
            }
            None => (".".to_string(), 0),
        };
        let origin_dir = &self.program.scopes[origin].dir;
        let entry_dir = self.program.entry_dir();
        (
            rebase(&text, origin_dir, &entry_dir).into(),
            rebase(&text, origin_dir, &self.program.scopes[node.scope].dir),
        )
    }

    /// Whether `count` more instances of `node`, with their `needs` links,
    /// stay within the plan's caps; says why not when they do not.
    fn within_caps(&mut self, node: &Node, count: usize, items: usize, combos: usize) -> bool {
        // Each instance waits for every instance of each need; a mirror
        // (`each_of`) only for those of its own item.
        let mirrored = matches!(node.for_each, Some(ForEach::EachOf { .. }));
        let links = node
            .needs
            .iter()
            .map(|&j| {
                let n = self.slots[j.index()].len();
                if mirrored && Some(j) == node.fan_out_source && !self.runtime[j.index()] {
                    n.saturating_mul(combos)
                } else {
                    n.saturating_mul(count)
                }
            })
            .fold(0usize, usize::saturating_add);
        let (what, cap) = if self.instances.len().saturating_add(count) > MAX_INSTANCES {
            (
                format!(
                    "node `{}` expands to {count} instances ({items} item(s) × {combos} matrix combination(s)), and a plan may have at most {MAX_INSTANCES}",
                    node.id
                ),
                "instances",
            )
        } else if self.edges.len().saturating_add(links) > MAX_LINKS {
            (
                format!(
                    "node `{}` adds {links} `needs` links between instances ({count} instance(s), each waiting for every instance it needs), and a plan may have at most {MAX_LINKS}",
                    node.id
                ),
                "links",
            )
        } else {
            return true;
        };
        self.push(
            Diagnostic::error(Code::TooLarge, what)
                .label(node.span, format!("too many {cap}"))
                .help("fan out over fewer items or matrix values, or split the work into several workflows; see docs/workflow-format.md, \"Size caps\""),
        );
        false
    }

    /// Two items (or matrix values) that give one instance key would be
    /// one instance twice: one task folder, one `DONE`, one fingerprint.
    /// Each is an error at the second one written.
    fn duplicates(
        &mut self,
        node: &Node,
        list: &str,
        what: &str,
        written: &[(Option<&serde_json::Value>, Span)],
    ) {
        let mut seen: std::collections::HashMap<String, (&serde_json::Value, Span)> =
            std::collections::HashMap::new();
        for &(value, span) in written {
            let Some(value) = value else { continue };
            let key = super::expand::item_key(value);
            let Some(&(first, first_span)) = seen.get(&key) else {
                seen.insert(key, (value, span));
                continue;
            };
            let (message, help) = if first == value {
                (
                    format!(
                        "{list} of node `{}` lists the {what} {value} twice",
                        node.id
                    ),
                    format!(
                        "remove one: each {what} makes instances of its own, with their own task folders"
                    ),
                )
            } else {
                (
                    format!(
                        "{list} of node `{}` has the {what}s {first} and {value}, which give one instance key `{key}`",
                        node.id
                    ),
                    format!(
                        "make the {what}s differ as text (a number and a string of its digits are one key), or remove one"
                    ),
                )
            };
            self.push(
                Diagnostic::error(Code::DuplicateItem, message)
                    .label(span, "again here")
                    .label(first_span, "first here")
                    .help(help),
            );
        }
    }

    fn instance(
        &mut self,
        node: &Node,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
        workdir: &Arc<str>,
        runtime: bool,
    ) -> Instance {
        let key: Arc<str> = if runtime {
            format!("{}[*]", node.id).into()
        } else {
            let label = self
                .item_label
                .take()
                .or_else(|| item.and_then(|i| super::expand::labels([i]).pop()));
            instance_key(&node.id, label.as_deref(), matrix).into()
        };
        let needs = if self.child {
            Vec::new()
        } else {
            self.needs_keys(node, item, self.instances.len())
        };
        // Agent and stop plan are shared by every instance of a node unless
        // they depend on the item or the matrix (an agent's `model` too).
        let templated_model = self.program.scopes[node.scope]
            .agents
            .iter()
            .any(|(_, a)| a.model.as_ref().is_some_and(|m| is_templated(&m.value)));
        let shared = !node.agent.as_ref().is_some_and(|a| is_templated(&a.value))
            && node.matrix.is_empty()
            && !templated_model
            && ![&node.stop.command, &node.stop.promise]
                .into_iter()
                .flatten()
                .any(|s| is_templated(&s.value));
        let agent = match &node.action {
            Action::Gate { .. } => None,
            Action::Merge(m) if m.resolver.is_none() => None,
            Action::Prompt { .. } | Action::Merge(_) => match &self.shared {
                Some((a, p, _)) if shared => Some((Arc::clone(a), *p)),
                _ => {
                    let (a, p) = self.agent_for(node, item, matrix);
                    Some((Arc::new(a), p))
                }
            },
        };
        let kind = match (&node.action, agent) {
            (Action::Gate { expr }, _) => InstanceKind::Gate {
                expr: expr.value.clone(),
            },
            (Action::Merge(m), agent) => InstanceKind::Merge {
                from: m
                    .from
                    .iter()
                    .map(|&f| self.program.node(f).id.clone())
                    .collect(),
                into: m.into.clone(),
                verify: m.verify.clone(),
                resolver: agent.map(|(agent, kind_is_process)| MergeResolver {
                    agent,
                    stop: Arc::new(stop_plan(&node.stop, kind_is_process, |s| {
                        self.render_opt(node, s, item, matrix)
                    })),
                }),
            },
            (Action::Prompt { .. }, Some((agent, kind_is_process))) => {
                let stop = match &self.shared {
                    Some((_, _, stop)) if shared => Arc::clone(stop),
                    _ => Arc::new(stop_plan(&node.stop, kind_is_process, |s| {
                        self.render_opt(node, s, item, matrix)
                    })),
                };
                if shared && self.shared.is_none() {
                    self.shared = Some((Arc::clone(&agent), kind_is_process, Arc::clone(&stop)));
                }
                if runtime {
                    let (from, path, lines) = match &node.for_each {
                        Some(ForEach::From {
                            from, path, lines, ..
                        }) => (
                            from.value.clone(),
                            path.as_ref().map(|p| p.value.clone()),
                            lines.as_ref().is_some_and(|l| l.value),
                        ),
                        Some(ForEach::EachOf { each_of }) => (each_of.value.clone(), None, false),
                        _ => (String::new(), None, false),
                    };
                    InstanceKind::FanOut {
                        from,
                        path,
                        lines,
                        max_items: node.max_items,
                        agent,
                        stop,
                    }
                } else {
                    let fallback_agents = node
                        .fallback_agents
                        .iter()
                        .filter_map(|f| {
                            let name = self.render(node, &f.value, f.span, item, matrix)?;
                            self.resolve_agent(node, &name, f.span, None, item, matrix)
                                .map(|(a, _)| Arc::new(a))
                        })
                        .collect();
                    InstanceKind::Agent {
                        agent,
                        fallback_agents,
                        stop,
                    }
                }
            }
            (Action::Prompt { .. }, None) => InstanceKind::Gate {
                expr: String::new(),
            },
        };
        let inputs = node
            .inputs
            .iter()
            .map(|g| {
                self.render(node, &g.value, g.span, item, matrix)
                    .unwrap_or_else(|| g.value.clone())
            })
            .collect();
        let env = node
            .env
            .iter()
            .map(|(k, v)| {
                (
                    k.value.clone(),
                    serde_json::Value::from(
                        self.render(node, &v.value, v.span, item, matrix)
                            .unwrap_or_else(|| v.value.clone()),
                    ),
                )
            })
            .collect();
        // `vars` values may be template strings, rendered per instance.
        let vars = match &node.action {
            Action::Prompt { vars, .. } => vars
                .iter()
                .map(|(k, v)| (k.clone(), self.render_value(node, v, item, matrix)))
                .collect(),
            Action::Gate { .. } | Action::Merge(_) => serde_json::Map::new(),
        };
        let (prompt, reads) = match &node.action {
            Action::Prompt { template, .. } if !self.child => {
                let prompt = self.render_prompt(node, template, &vars, item, matrix, runtime);
                (prompt, self.reads.clone())
            }
            Action::Prompt { .. } | Action::Gate { .. } | Action::Merge(_) => (None, None),
        };
        let resolver = match (&node.action, &node.resolver) {
            (Action::Prompt { .. }, Some((agent, _))) => self
                .resolve_agent(node, &agent.value, agent.span, None, item, matrix)
                .map(|(agent, kind_is_process)| MergeResolver {
                    agent: Arc::new(agent),
                    stop: Arc::new(stop_plan(&node.stop, kind_is_process, |s| {
                        self.render_opt(node, s, item, matrix)
                    })),
                }),
            _ => None,
        };
        Instance {
            key,
            node: Arc::clone(&self.node_id),
            description: node.description.as_deref().map(Arc::from),
            item: item.cloned(),
            matrix: matrix.cloned(),
            needs,
            kind,
            workdir: Arc::clone(workdir),
            inputs,
            env,
            on_failure: node.on_failure.as_str(),
            max_parallel: node.max_parallel,
            groups: node
                .groups
                .iter()
                .map(|&g| self.program.group(g).id.clone())
                .collect(),
            writes: node
                .writes
                .iter()
                .map(|g| {
                    self.render(node, &g.value, g.span, item, matrix)
                        .unwrap_or_else(|| g.value.clone())
                })
                .collect(),
            isolation: self.isolation(node, item, matrix),
            resolver,
            prompt: prompt.filter(|_| self.show_prompts),
            vars,
            reads: reads.unwrap_or_default(),
        }
    }

    /// An agent instance's isolation, its `base` rendered for it.
    fn isolation(
        &mut self,
        node: &Node,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<IsolationPlan> {
        if node.isolation == Isolation::None || matches!(node.action, Action::Gate { .. }) {
            return None;
        }
        let base = node.base.as_ref().map_or_else(
            || "HEAD".to_string(),
            |b| {
                self.render(node, &b.value, b.span, item, matrix)
                    .unwrap_or_else(|| b.value.clone())
            },
        );
        Some(IsolationPlan {
            mode: node.isolation.as_str(),
            base,
            network: (node.isolation == Isolation::Sandbox).then_some(node.network),
        })
    }

    /// A `vars` value with its template strings rendered, in lists and
    /// tables too.
    fn render_value(
        &mut self,
        node: &Node,
        value: &serde_json::Value,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> serde_json::Value {
        match value {
            serde_json::Value::String(s) if is_templated(s) => serde_json::Value::from(
                self.render(node, s, node.span, item, matrix)
                    .unwrap_or_else(|| s.clone()),
            ),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|v| self.render_value(node, v, item, matrix))
                .collect(),
            serde_json::Value::Object(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.render_value(node, v, item, matrix)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Upstream instance keys; a mirrored (`each_of`) source contributes only
    /// the instance with the same item.
    /// Also records the DAG edges into instance `me`.
    fn needs_keys(
        &mut self,
        node: &Node,
        item: Option<&serde_json::Value>,
        me: usize,
    ) -> Vec<Arc<str>> {
        let mirrored = matches!(node.for_each, Some(ForEach::EachOf { .. }));
        let mut keys = Vec::new();
        for &j in &node.needs {
            let j = j.index();
            if mirrored && Some(NodeId::new(j)) == node.fan_out_source && !self.runtime[j] {
                // Only the instances with this item, found by its key: a
                // scan of all of them for each mirror would be quadratic.
                self.index_items(j);
                let found = item
                    .map(super::expand::item_key)
                    .and_then(|k| self.items_of[&j].slots.get(&k));
                for &p in found.into_iter().flatten() {
                    let at = self.slots[j][p].at;
                    keys.push(Arc::clone(&self.instances[at].key));
                    self.edges.push((at, me));
                }
                continue;
            }
            for s in &self.slots[j] {
                keys.push(Arc::clone(&self.instances[s.at].key));
                self.edges.push((s.at, me));
            }
        }
        keys
    }

    /// The agent of one instance: a matrix `agent` wins over the node's.
    fn agent_for(
        &mut self,
        node: &Node,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> (AgentRef, bool) {
        let model = matrix
            .and_then(|m| m.get("model"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let from_matrix = matrix
            .and_then(|m| m.get("agent"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let span = node.agent.as_ref().map_or(node.span, |a| a.span);
        let name = from_matrix.or_else(|| {
            node.agent.as_ref().map(|a| {
                self.render(node, &a.value, a.span, item, matrix)
                    .unwrap_or_else(|| a.value.clone())
            })
        });
        let unknown = AgentRef {
            name: name.clone().unwrap_or_default(),
            kind: "command",
            model: model.clone(),
        };
        match name.and_then(|n| self.resolve_agent(node, &n, span, model, item, matrix)) {
            Some(found) => found,
            None => (unknown, true),
        }
    }

    fn resolve_agent(
        &mut self,
        node: &Node,
        name: &str,
        span: Span,
        model: Option<String>,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<(AgentRef, bool)> {
        let scope = &self.program.scopes[node.scope];
        let agent = scope
            .agent(name)
            .cloned()
            .or_else(|| Agent::builtin(name, span));
        let Some(agent) = agent else {
            let names: Vec<&str> = scope
                .agents
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(["claude", "codex", "gemini"])
                .collect();
            let help = suggestion_help(name, names.iter().copied(), "the agents are");
            self.push(
                Diagnostic::error(
                    Code::UnknownAgent,
                    format!("unknown agent `{name}` (node `{}`)", node.id),
                )
                .label(span, "renders to an undeclared agent")
                .maybe_help(help),
            );
            return None;
        };
        // The agent's `model` is a template string, rendered for the
        // instance that runs it; a matrix `model` wins over it.
        let model = match model {
            Some(m) => Some(m),
            None => agent
                .model
                .as_ref()
                .map(|m| self.render_opt(node, m, item, matrix)),
        };
        Some((
            AgentRef {
                name: name.to_string(),
                kind: agent.kind.value.as_str(),
                model,
            },
            agent.kind.value.is_process(),
        ))
    }

    fn context(
        &self,
        node: &Node,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Value {
        let scope = &self.program.scopes[node.scope];
        context! {
            params => self.params[node.scope].clone(),
            vars => Value::from(()),
            env => self.env.clone(),
            node => node.id.as_str(),
            workflow => scope.workflow.as_str(),
            item => self.item_value(item),
            matrix => matrix.map(|m| prompt::context(&serde_json::Value::Object(m.clone()))),
        }
    }

    /// `item` as templates see it: the item, the stand-in of a run-time
    /// fan-out's, or undefined (so that a node without fan-out that reads it
    /// is told so, rather than given `none`).
    fn item_value(&self, item: Option<&serde_json::Value>) -> Value {
        match item {
            Some(item) => prompt::context(item),
            None if self.item_stand_in => Placeholder::value("<item>"),
            None => Value::UNDEFINED,
        }
    }

    /// Renders a templated string; plain strings are returned as they are.
    fn render(
        &mut self,
        node: &Node,
        text: &str,
        span: Span,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<String> {
        if !is_templated(text) {
            return Some(text.to_string());
        }
        if self.out_of_fuel.contains(&node.id) {
            return None;
        }
        let ctx = self.context(node, item, matrix);
        match self.program.scopes[node.scope]
            .templates
            .render_str(text, ctx)
        {
            Ok(s) => Some(s),
            Err(e) => {
                self.note_fuel(node, &e);
                let detail = prompt::error_detail(&e);
                self.push(
                    Diagnostic::error(Code::UndefinedVariable, format!("cannot render `{text}` for node `{}`: {detail}", node.id))
                        .label(span, "in this value")
                        .help("strings other than prompts may use `params`, `vars`, `item`, `matrix`, `env`, `node` and `workflow`"),
                );
                None
            }
        }
    }

    fn render_opt(
        &mut self,
        node: &Node,
        s: &Spanned<String>,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> String {
        self.render(node, &s.value, s.span, item, matrix)
            .unwrap_or_else(|| s.value.clone())
    }

    /// The first iteration's prompt, rendered strictly; `needs` results are
    /// placeholders since nothing has run.
    fn render_prompt(
        &mut self,
        node: &Node,
        template: &str,
        vars: &serde_json::Map<String, serde_json::Value>,
        item: Option<&serde_json::Value>,
        matrix: Option<&serde_json::Map<String, serde_json::Value>>,
        runtime: bool,
    ) -> Option<String> {
        let mut needs = std::collections::BTreeMap::new();
        for (name, j) in &node.needs_by_name {
            let mirrored = Some(*j) == node.fan_out_source
                && matches!(node.for_each, Some(ForEach::EachOf { .. }));
            let value = if mirrored {
                // `needs.X` is the one instance of X with the same item.
                let found = match item {
                    Some(item) => {
                        self.index_items(j.index());
                        self.items_of[&j.index()]
                            .slots
                            .get(&super::expand::item_key(item))
                            .and_then(|found| found.first().copied())
                    }
                    // A run-time mirror of a run-time fan-out: its one slot.
                    None => self.slots[j.index()].iter().position(|s| s.item.is_none()),
                };
                found
                    .map(|p| self.result_placeholder(j.index(), &self.slots[j.index()][p]))
                    .unwrap_or_default()
            } else {
                self.needs_value(j.index())
            };
            needs.insert(name.clone(), value);
        }
        // A run-time fan-out's items are not known yet: `item` is a stand-in.
        let item_value = if runtime {
            Placeholder::value("<item>")
        } else {
            item.map(prompt::context).unwrap_or_default()
        };
        let ctx = context! {
            params => self.params[node.scope].clone(),
            vars => prompt::context(&serde_json::Value::Object(vars.clone())),
            env => self.env.clone(),
            node => Value::from(Arc::clone(&self.node_id)),
            workflow => self.program.scopes[node.scope].workflow.as_str(),
            item => item_value,
            matrix => matrix.map(|m| prompt::context(&serde_json::Value::Object(m.clone()))),
            iteration => 1,
            needs => Value::from(needs),
        };
        if self.out_of_fuel.contains(&node.id) {
            return None;
        }
        let scope = &self.program.scopes[node.scope];
        // Placeholders stand in for what exists only at run time, templates
        // named after them included.
        let (rendered, reads) = prompt::recording(true, || {
            scope
                .templates
                .get_template(template)
                .and_then(|t| t.render(ctx))
        });
        if self.reads.as_deref() != Some(&reads) {
            self.reads = Some(Arc::new(reads));
        }
        match rendered {
            Ok(s) => Some(s),
            Err(e) => {
                self.note_fuel(node, &e);
                let mut locator = Locator {
                    sources: self.sources,
                    scopes: &self.program.scopes,
                    inline: &self.program.inline,
                };
                let d = locator.template_error(node.scope, &e, node.span);
                let d = Diagnostic {
                    message: format!("{} (node `{}`)", d.message, node.id),
                    ..d
                };
                self.push(d);
                None
            }
        }
    }

    /// Indexes node `j`'s instances by item key, once.
    fn index_items(&mut self, j: usize) {
        if self.items_of.contains_key(&j) {
            return;
        }
        let mut index = ItemIndex::default();
        for (p, slot) in self.slots[j].iter().enumerate() {
            let Some(item) = &slot.item else { continue };
            let key = super::expand::item_key(item);
            let positions = index.slots.entry(key.clone()).or_default();
            if positions.is_empty() {
                index.order.push(key);
            }
            positions.push(p);
        }
        self.items_of.insert(j, index);
    }

    /// A node whose template used up a render's fuel is not rendered again
    /// for its other instances: once is reported, and a thousand items
    /// would take a thousand times as long to say the same.
    fn note_fuel(&mut self, node: &Node, e: &minijinja::Error) {
        if e.kind() == minijinja::ErrorKind::OutOfFuel {
            self.out_of_fuel.insert(node.id.clone());
        }
    }

    /// `needs.X` as every dependent of X sees it: X's result, or the list of
    /// its instances' results when X fans out. Built once per X.
    fn needs_value(&mut self, j: usize) -> Value {
        if let Some(v) = self.needs_cache.get(&j) {
            return v.clone();
        }
        let results: Vec<Value> = self.slots[j]
            .iter()
            .map(|s| self.result_placeholder(j, s))
            .collect();
        let many = self.runtime[j]
            || self.program.nodes[j].for_each.is_some()
            || !self.program.nodes[j].matrix.is_empty();
        let value = if many {
            Value::from(results)
        } else {
            results.into_iter().next().unwrap_or_default()
        };
        self.needs_cache.insert(j, value.clone());
        value
    }

    fn result_placeholder(&self, j: usize, slot: &Slot) -> Value {
        let key = &self.instances[slot.at].key;
        let json = self.program.nodes[j]
            .output
            .as_ref()
            .is_some_and(|o| o.format.value == OutputFormat::Json);
        context! {
            output => format!("<output of {key}>"),
            json => if json { Placeholder::value(format!("<json of {key}>")) } else { Value::UNDEFINED },
            status => "done",
            stop_reason => crate::stop_reason::StopReason::Done.to_string(),
            iterations => 1,
            item => slot.item.as_ref().map(prompt::context),
            cost_usd => 0.0,
            task_dir => format!("<task folder of {key}>"),
        }
    }
}
