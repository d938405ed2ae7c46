//! Walks the entry file and its sub-workflows, scope by scope, filling the
//! node arena in dependency order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::graph::{check_cycles, dependencies, topo_order};
use super::params::{self, Given};
use super::program::{Group, InlineTemplate, Node, NodeId, Program, Scope};
use super::source_file::{self, load_error};
use crate::diagnostic::{Code, Diagnostic, Diagnostics, suggestion_help};
use crate::model::{self, Agent, Defaults, Spanned, Workflow};
use crate::paths::{display_rel, normalize, relative_to};
use crate::prompt::{self, Library};
use crate::source::{FileId, Sources, Span};

/// What a scope's parent hands down.
#[derive(Debug)]
pub(super) struct Inherited<'a> {
    pub agents: &'a [(String, Agent)],
    pub defaults: &'a Defaults,
    /// The workdir inner nodes inherit, with the scope it is written in.
    pub workdir: Option<(Spanned<String>, usize)>,
    /// Arena indices the scope's root nodes wait for (the sub-workflow node's needs).
    pub needs: &'a [usize],
    pub prefix: String,
    /// Where the sub-workflow was named, for errors about its params.
    pub named_at: Option<Span>,
    /// Open sub-workflow files, outermost first, to refuse recursion.
    pub stack: &'a [PathBuf],
    /// Groups (sub-workflow nodes) this scope is inside, innermost first.
    pub groups: &'a [usize],
}

/// What a scope exports to its parent.
#[derive(Debug)]
pub(super) struct ScopeOut {
    pub result: usize,
    pub sinks: Vec<usize>,
    pub success: Vec<String>,
}

/// How a local node appears to the nodes that need it.
#[derive(Debug, Clone)]
pub(super) struct Export {
    pub result: usize,
    pub all: Vec<usize>,
}

#[derive(Debug)]
pub(super) struct Builder {
    pub sources: Sources,
    pub diags: Diagnostics,
    pub scopes: Vec<Scope>,
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
    /// Inline prompt templates: (scope, template name) to the span of the text.
    pub inline: HashMap<(usize, String), InlineTemplate>,
    pub entry_dir: PathBuf,
    /// [`MAX_NODES`] was passed and said so.
    too_many_nodes: bool,
    /// The secret variable names of the scopes so far, and how many scopes
    /// that was: found again only when a scope was added.
    secrets: (usize, Vec<String>),
}

/// The deepest sub-workflows nest (docs/workflow-format.md, "Size caps").
const MAX_NESTING: usize = 32;

/// The most nodes a program has, counting each use of a sub-workflow
/// (docs/workflow-format.md, "Size caps").
const MAX_NODES: usize = 20_000;

impl Builder {
    /// The variables that hold secrets (`program::secret_names`) for the
    /// scopes built so far.
    pub(super) fn secret_names(&mut self) -> Vec<String> {
        if self.secrets.0 != self.scopes.len() || self.secrets.1.is_empty() {
            self.secrets = (
                self.scopes.len(),
                super::program::secret_names(&self.scopes),
            );
        }
        self.secrets.1.clone()
    }

    pub(super) fn new(sources: Sources, diags: Diagnostics) -> Self {
        Self {
            sources,
            diags,
            scopes: Vec::new(),
            nodes: Vec::new(),
            groups: Vec::new(),
            inline: HashMap::new(),
            entry_dir: PathBuf::new(),
            too_many_nodes: false,
            secrets: (0, Vec::new()),
        }
    }

    pub(super) fn finish(self) -> (Sources, Diagnostics) {
        (self.sources, self.diags)
    }

    pub(super) fn entry(&mut self, path: &Path, given: &[Given]) -> Option<Program> {
        self.entry_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let file = match source_file::read(path, &mut self.sources) {
            Ok(f) => f,
            Err(e) => {
                self.diags
                    .push(load_error(path, &e, None, Code::WorkflowNotFound));
                return None;
            }
        };
        let wf = source_file::decode(file, &self.sources, &mut self.diags)?;
        let inherited = Inherited {
            agents: &[],
            defaults: &Defaults::default(),
            workdir: None,
            needs: &[],
            prefix: String::new(),
            named_at: None,
            stack: &[path.to_path_buf()],
            groups: &[],
        };
        let out = self.scope(file, &wf, given, &inherited);
        let name = wf.name.value.clone();
        let project = wf
            .project
            .as_ref()
            .map_or_else(|| slug(&name), |p| p.value.clone());
        let limits = wf.limits.clone().unwrap_or_default();
        out.map(|_| Program {
            name,
            project,
            root: wf.root.as_ref().map(|r| r.value.clone()),
            scopes: std::mem::take(&mut self.scopes),
            nodes: std::mem::take(&mut self.nodes),
            groups: std::mem::take(&mut self.groups),
            success: wf
                .success
                .as_ref()
                .map(|s| s.commands.clone())
                .unwrap_or_default(),
            success_workdir: wf.defaults.as_ref().and_then(|d| d.workdir.clone()),
            budget_usd: limits.budget_usd.map(|b| b.value),
            max_agents: limits.max_agents.map(|m| m.value),
            executor: wf.executor.clone().unwrap_or_default(),
            notify: wf.notify.as_ref().map(|n| super::program::NotifySpec {
                webhook: n.webhook.value.clone(),
                secret_env: n.secret_env.as_ref().map(|s| s.value.clone()),
            }),
            inline: std::mem::take(&mut self.inline),
        })
    }

    /// Compiles one file's nodes into the arena.
    pub(super) fn scope(
        &mut self,
        file: FileId,
        wf: &Workflow,
        given: &[Given],
        up: &Inherited<'_>,
    ) -> Option<ScopeOut> {
        let path = self.sources.get(file).path.clone();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let syntax = self.sources.get(file).syntax;
        let missing_at = up.named_at.unwrap_or(wf.name.span);
        let params = params::resolve(&wf.params, given, &dir, missing_at, &mut self.diags);
        let mut agents: Vec<(String, Agent)> = wf
            .agents
            .iter()
            .map(|(n, a)| (n.value.clone(), a.clone()))
            .collect();
        for (n, a) in up.agents {
            if !agents.iter().any(|(m, _)| m == n) {
                agents.push((n.clone(), a.clone()));
            }
        }
        let defaults = merge_defaults(wf.defaults.as_ref(), up.defaults);
        let library = self.library(wf, &dir);
        let templates = prompt::environment(&library);
        let scope = self.scopes.len();
        self.scopes.push(Scope {
            file,
            dir: dir.clone(),
            workflow: wf.name.value.clone(),
            prefix: up.prefix.clone(),
            params,
            agents,
            library,
            templates,
            notify_secret: wf
                .notify
                .as_ref()
                .and_then(|n| n.secret_env.as_ref())
                .map(|s| s.value.clone()),
        });

        let deps = dependencies(&wf.nodes, syntax, &mut self.diags);
        // With a cycle there is no order and no program, but every node is
        // still checked so that the user sees all problems at once.
        let cyclic = !check_cycles(&wf.nodes, &deps, &mut self.diags);
        let order = if cyclic {
            (0..wf.nodes.len()).collect()
        } else {
            topo_order(&wf.nodes, &deps)
        };
        let mut exports: Vec<Option<Export>> = vec![None; wf.nodes.len()];
        for &i in &order {
            let local = &wf.nodes[i];
            let mut needs: Vec<usize> = Vec::new();
            let mut by_name: Vec<(String, usize)> = Vec::new();
            for d in &deps[i] {
                if let Some(e) = &exports[d.to] {
                    needs.extend(e.all.iter().copied());
                    by_name.push((wf.nodes[d.to].id.value.clone(), e.result));
                }
            }
            if deps[i].is_empty() {
                needs.extend_from_slice(up.needs);
            }
            needs.sort_unstable();
            needs.dedup();
            let fan_source = deps[i]
                .iter()
                .find(|d| is_source(local, &wf.nodes[d.to].id.value))
                .and_then(|d| exports[d.to].as_ref().map(|e| e.result));
            exports[i] = if let Some(sub) = &local.workflow {
                self.sub_workflow(scope, local, sub, &needs, up, &defaults)
            } else {
                let idx = self.node(
                    scope, local, &defaults, needs, by_name, fan_source, up, &wf.nodes,
                );
                idx.map(|node| {
                    let at = self.nodes.len();
                    self.nodes.push(node);
                    Export {
                        result: at,
                        all: vec![at],
                    }
                })
            };
        }

        if cyclic {
            return None;
        }
        let needed: std::collections::HashSet<usize> =
            deps.iter().flatten().map(|d| d.to).collect();
        let sinks: Vec<usize> = (0..wf.nodes.len())
            .filter(|i| !needed.contains(i))
            .collect();
        let result = self.result_node(wf, &sinks, &exports)?;
        let sinks = sinks
            .iter()
            .filter_map(|&i| exports[i].as_ref())
            .flat_map(|e| e.all.clone())
            .collect();
        for command in wf.success.iter().flat_map(|s| &s.commands) {
            self.check_shell_values(command, false);
        }
        let success = wf
            .success
            .as_ref()
            .map(|s| s.commands.iter().map(|c| c.value.clone()).collect())
            .unwrap_or_default();
        Some(ScopeOut {
            result,
            sinks,
            success,
        })
    }

    /// The template search path: the file's folder, then `[prompts] library`.
    fn library(&mut self, wf: &Workflow, dir: &Path) -> Library {
        let mut search = vec![dir.to_path_buf()];
        for l in wf.prompts.iter().flat_map(|p| &p.library) {
            let p = normalize(&dir.join(&l.value));
            if p.is_dir() {
                search.push(p);
            } else {
                self.diags.push(
                    Diagnostic::error(
                        Code::TemplateNotFound,
                        format!("prompt library folder `{}` does not exist", l.value),
                    )
                    .label(l.span, "no such folder")
                    .help(format!(
                        "library folders are relative to the workflow file's folder, {}",
                        display_rel(&relative_to(dir, &self.entry_dir))
                    )),
                );
            }
        }
        Library::new(search)
    }

    /// The node whose result is this scope's result: `output`, else the single sink.
    fn result_node(
        &mut self,
        wf: &Workflow,
        sinks: &[usize],
        exports: &[Option<Export>],
    ) -> Option<usize> {
        if let Some(out) = &wf.output {
            let Some(i) = wf.nodes.iter().position(|n| n.id.value == out.value) else {
                let help = suggestion_help(
                    &out.value,
                    wf.nodes.iter().map(|n| n.id.value.as_str()),
                    "the nodes are",
                );
                self.diags.push(
                    Diagnostic::error(
                        Code::UnknownNeed,
                        format!(
                            "`output` names `{}`, which is not a node of this workflow",
                            out.value
                        ),
                    )
                    .label(out.span, "no such node")
                    .maybe_help(help),
                );
                return None;
            };
            return exports[i].as_ref().map(|e| e.result);
        }
        match sinks {
            [one] => exports[*one].as_ref().map(|e| e.result),
            // An entry workflow with several final nodes is fine; only a
            // sub-workflow needs a single result, and it asks below.
            _ => sinks
                .last()
                .and_then(|&i| exports[i].as_ref().map(|e| e.result)),
        }
    }

    fn sub_workflow(
        &mut self,
        scope: usize,
        local: &model::Node,
        sub: &Spanned<String>,
        needs: &[usize],
        up: &Inherited<'_>,
        defaults: &Defaults,
    ) -> Option<Export> {
        let dir = self.scopes[scope].dir.clone();
        let path = normalize(&dir.join(&sub.value));
        if up.stack.contains(&path) {
            let chain: Vec<String> = up
                .stack
                .iter()
                .chain(std::iter::once(&path))
                .map(|p| display_rel(&relative_to(p, &self.entry_dir)))
                .collect();
            self.diags.push(
                Diagnostic::error(Code::WorkflowRecursion, format!("workflow `{}` includes itself: {}", sub.value, chain.join(" -> ")))
                    .label(sub.span, "included again here")
                    .help("a sub-workflow cannot use a workflow that is already open; to loop a subgraph, give the node a `stop`"),
            );
            return None;
        }
        if up.stack.len() > MAX_NESTING {
            self.diags.push(
                Diagnostic::error(
                    Code::TooLarge,
                    format!(
                        "sub-workflows nest more than {MAX_NESTING} deep here ({} files open)",
                        up.stack.len()
                    ),
                )
                .label(sub.span, "one level too deep")
                .help("flatten the chain of sub-workflows; see docs/workflow-format.md, \"Size caps\""),
            );
            return None;
        }
        // A file used twice that uses another twice, and so on, doubles
        // at each level: count what has been spliced in so far.
        if self.nodes.len() + self.groups.len() >= MAX_NODES {
            if !self.too_many_nodes {
                self.too_many_nodes = true;
                self.diags.push(
                    Diagnostic::error(
                        Code::TooLarge,
                        format!(
                            "the workflow and its sub-workflows have more than {MAX_NODES} nodes, counting each use of a sub-workflow"
                        ),
                    )
                    .label(sub.span, "used once more here")
                    .help("use sub-workflows fewer times, or split the work into several workflows; see docs/workflow-format.md, \"Size caps\""),
                );
            }
            return None;
        }
        if local.for_each.is_some() || !local.matrix.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    Code::FanOut,
                    format!("sub-workflow node `{}` cannot fan out", local.id.value),
                )
                .label(local.id.span, "has `for_each` or `matrix` and `workflow`")
                .help("fan out inside the sub-workflow instead, with a param for the items"),
            );
        }
        let file = match source_file::read(&path, &mut self.sources) {
            Ok(f) => f,
            Err(e) => {
                self.diags.push(load_error(
                    &path,
                    &e,
                    Some(sub.span),
                    Code::WorkflowNotFound,
                ));
                return None;
            }
        };
        let wf = source_file::decode(file, &self.sources, &mut self.diags)?;
        let given = self.with_values(scope, local, &dir);
        let group = self.groups.len();
        self.groups.push(Group {
            id: format!("{}{}", up.prefix, local.id.value),
            file: display_rel(&relative_to(&path, &self.entry_dir)),
            // Set once its nodes are built, below.
            result: NodeId::new(0),
            stop: local.stop.clone(),
            success: Vec::new(),
        });
        let stack: Vec<PathBuf> = up
            .stack
            .iter()
            .cloned()
            .chain(std::iter::once(path))
            .collect();
        let groups: Vec<usize> = std::iter::once(group)
            .chain(up.groups.iter().copied())
            .collect();
        // Inner nodes inherit the parent's defaults, but a workdir is relative
        // to the file that wrote it, so it travels separately with its scope.
        let parent_defaults = Defaults {
            workdir: None,
            ..defaults.clone()
        };
        let workdir = local
            .workdir
            .clone()
            .map(|w| (w, scope))
            .or_else(|| defaults.workdir.clone().map(|w| (w, scope)))
            .or_else(|| up.workdir.clone());
        let agents = self.scopes[scope].agents.clone();
        let inner = Inherited {
            agents: &agents,
            defaults: &parent_defaults,
            workdir,
            needs,
            prefix: format!("{}{}/", up.prefix, local.id.value),
            named_at: Some(sub.span),
            stack: &stack,
            groups: &groups,
        };
        let out = self.scope(file, &wf, &given, &inner)?;
        self.check_single_result(&wf, &out, sub);
        self.groups[group].result = NodeId::new(out.result);
        self.groups[group].success = out.success;
        let mut all = out.sinks;
        all.push(out.result);
        all.sort_unstable();
        all.dedup();
        Some(Export {
            result: out.result,
            all,
        })
    }

    fn check_single_result(&mut self, wf: &Workflow, out: &ScopeOut, sub: &Spanned<String>) {
        if wf.output.is_none() && out.sinks.len() > 1 {
            let names: Vec<String> = out
                .sinks
                .iter()
                .map(|&i| format!("`{}`", self.nodes[i].id))
                .collect();
            self.diags.push(
                Diagnostic::error(
                    Code::MissingKey,
                    format!(
                        "sub-workflow `{}` has several final nodes ({}) and no `output`",
                        sub.value,
                        names.join(", ")
                    ),
                )
                .label(sub.span, "used as a node here")
                .label(wf.name.span, "in this workflow")
                .help(
                    "set `output = \"NODE\"` at the top of the sub-workflow to name the node whose result it returns",
                ),
            );
        }
    }

    /// `with` values, rendered over the parent's params, as param values.
    fn with_values(&mut self, scope: usize, local: &model::Node, dir: &Path) -> Vec<Given> {
        let mut out = Vec::new();
        for (k, v) in &local.with {
            let value = match v.value.as_str() {
                Some(s) if crate::prompt::is_templated(s) => {
                    let Some(text) = self.render_string(scope, &local.id.value, s, v.span, None)
                    else {
                        continue;
                    };
                    serde_json::Value::from(text)
                }
                _ => v.value.clone(),
            };
            out.push(Given {
                name: k.value.clone(),
                name_span: k.span,
                value,
                value_span: v.span,
                base_dir: dir.to_path_buf(),
                via: "`with`",
            });
        }
        out
    }
}

fn is_source(n: &model::Node, id: &str) -> bool {
    match &n.for_each {
        Some(model::ForEach::From { from, .. }) => from.value == id,
        Some(model::ForEach::EachOf { each_of }) => each_of.value == id,
        _ => false,
    }
}

/// Key by key, tables included: a key the file sets wins over the parent's.
fn merge_defaults(own: Option<&Defaults>, parent: &Defaults) -> Defaults {
    let Some(own) = own else {
        return parent.clone();
    };
    let mut env = parent.env.clone();
    for (k, v) in &own.env {
        env.retain(|(pk, _)| pk.value != k.value);
        env.push((k.clone(), v.clone()));
    }
    Defaults {
        agent: own.agent.clone().or_else(|| parent.agent.clone()),
        workdir: own.workdir.clone().or_else(|| parent.workdir.clone()),
        isolation: own.isolation.clone().or_else(|| parent.isolation.clone()),
        base: own.base.clone().or_else(|| parent.base.clone()),
        network: own.network.clone().or_else(|| parent.network.clone()),
        env,
        inputs: own.inputs.clone().or_else(|| parent.inputs.clone()),
        on_failure: own.on_failure.clone().or_else(|| parent.on_failure.clone()),
        fallback_agents: own
            .fallback_agents
            .clone()
            .or_else(|| parent.fallback_agents.clone()),
        max_parallel: own
            .max_parallel
            .clone()
            .or_else(|| parent.max_parallel.clone()),
        max_items: own.max_items.clone().or_else(|| parent.max_items.clone()),
        stop: match (&own.stop, &parent.stop) {
            (Some(a), Some(b)) => Some(a.merged_over(b)),
            (a, b) => a.clone().or_else(|| b.clone()),
        },
    }
}

/// The default project id: the name, lower-cased, runs of other characters as `-`.
pub(super) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        "workflow".to_string()
    } else {
        trimmed.to_string()
    }
}
