//! The compiled program: every node of the workflow and its sub-workflows in
//! one arena, in dependency order, with defaults merged and names resolved.
//! This is what `plan` expands into instances.

use std::path::PathBuf;

use crate::model::{Agent, ForEach, Isolation, OnFailure, OutputSpec, Spanned, Stop, UserMap};
use crate::prompt::Library;
use crate::source::{FileId, Span};

/// One workflow file as instantiated in this compile (the entry file, or a
/// sub-workflow with its `with` params).
#[derive(Debug)]
pub struct Scope {
    pub file: FileId,
    /// The file's folder (absolute): paths written in the file are relative to it.
    pub dir: PathBuf,
    pub workflow: String,
    /// `outer/` prefix of node ids in this scope; empty for the entry file.
    pub prefix: String,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Agents visible here: the file's own, then the parent's.
    pub agents: Vec<(String, Agent)>,
    pub library: Library,
    pub templates: minijinja::Environment<'static>,
    /// The variable holding the file's webhook secret (`[notify] secret_env`).
    pub notify_secret: Option<String>,
}

impl Scope {
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
}

/// A node's place in the program's arena (`Program::nodes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(usize);

/// A sub-workflow node's place in `Program::groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(usize);

impl NodeId {
    pub fn new(index: usize) -> Self {
        Self(index)
    }

    pub fn index(self) -> usize {
        self.0
    }
}

impl GroupId {
    pub fn new(index: usize) -> Self {
        Self(index)
    }

    pub fn index(self) -> usize {
        self.0
    }
}

/// What a node does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Run `agent` on the prompt template registered under this name in the scope's environment.
    Prompt {
        template: String,
        vars: serde_json::Map<String, serde_json::Value>,
    },
    /// Evaluate this expression over `needs`.
    Gate { expr: Spanned<String> },
    /// Land the branches of isolated nodes' instances on one branch.
    Merge(std::sync::Arc<MergeSpec>),
}

/// A merge node's work (docs/isolation.md, "Merge nodes").
#[derive(Debug, Clone)]
pub struct MergeSpec {
    /// The isolated nodes whose instances' branches it merges, in order.
    pub from: Vec<NodeId>,
    /// The branch it lands on; its own integration branch when `None`.
    pub into: Option<String>,
    /// Commands that must pass in the merged tree after each branch.
    pub verify: Vec<String>,
    /// The template its resolving agent (the node's `agent`) is told each
    /// conflict with; `None`: a conflicting branch is left unmerged.
    pub resolver: Option<String>,
}

/// One node of the flattened DAG.
#[derive(Debug, Clone)]
pub struct Node {
    /// Full id: `outer/inner` for sub-workflow nodes.
    pub id: String,
    pub scope: usize,
    pub span: Span,
    pub description: Option<String>,
    /// The nodes this one waits for.
    pub needs: Vec<NodeId>,
    /// `needs["x"]` in templates: local name to the node of x's result.
    pub needs_by_name: Vec<(String, NodeId)>,
    pub action: Action,
    pub agent: Option<Spanned<String>>,
    pub fallback_agents: Vec<Spanned<String>>,
    pub for_each: Option<ForEach>,
    /// For `from`/`each_of` fan-out: the source.
    pub fan_out_source: Option<NodeId>,
    pub matrix: UserMap<Vec<Spanned<serde_json::Value>>>,
    /// The workdir as written, and the scope whose folder and params it is relative to.
    pub workdir: Option<(Spanned<String>, usize)>,
    pub inputs: Vec<Spanned<String>>,
    pub env: UserMap<Spanned<String>>,
    pub on_failure: OnFailure,
    pub stop: Stop,
    pub output: Option<OutputSpec>,
    pub max_parallel: Option<u32>,
    pub max_items: u32,
    /// Where its instances run, and from which commit when isolated.
    pub isolation: Isolation,
    pub base: Option<Spanned<String>>,
    /// Whether a sandboxed agent may use the network.
    pub network: bool,
    /// Globs of the files its instances may change, relative to the workdir.
    pub writes: Vec<Spanned<String>>,
    /// What its instances' Slurm jobs ask for, over the workflow's.
    pub executor: Option<crate::model::Executor>,
    /// An isolated node's agent that resolves conflicts between its needs'
    /// branches, and the template it is told each conflict with.
    pub resolver: Option<(Spanned<String>, String)>,
    /// The sub-workflow nodes this node belongs to, innermost first.
    pub groups: Vec<GroupId>,
}

/// A sub-workflow node: its inner nodes loop together under its `stop`.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    /// The sub-workflow file, relative to the entry file's folder.
    pub file: String,
    /// The node whose result is the group's result.
    pub result: NodeId,
    pub stop: Option<Stop>,
    pub success: Vec<String>,
}

/// A compiled workflow.
#[derive(Debug)]
pub struct Program {
    pub name: String,
    pub project: String,
    pub root: Option<String>,
    pub scopes: Vec<Scope>,
    pub nodes: Vec<Node>,
    pub groups: Vec<Group>,
    pub success: Vec<Spanned<String>>,
    /// Where `[success]` commands run: the entry file's `[defaults] workdir`, else its folder.
    pub success_workdir: Option<Spanned<String>>,
    pub budget_usd: Option<f64>,
    pub max_agents: Option<u32>,
    /// The entry file's `[executor]`.
    pub executor: crate::model::Executor,
    /// The entry file's `[notify]`.
    pub notify: Option<NotifySpec>,
    /// Inline prompt templates: (scope, template name) to the span of their text.
    pub inline: std::collections::HashMap<(usize, String), InlineTemplate>,
}

/// Where the ends of instances and applies are posted (`[notify]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySpec {
    pub webhook: String,
    /// The variable holding the signing secret.
    pub secret_env: Option<String>,
}

/// The variables that hold secrets in a program of these scopes: the
/// vendor keys and every agent's `api_key_env` (docs/security.md).
pub(crate) fn secret_names(scopes: &[Scope]) -> Vec<String> {
    let mut names: Vec<String> = crate::secrets::VENDOR_KEYS
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    for scope in scopes {
        if let Some(k) = &scope.notify_secret
            && !names.contains(k)
        {
            names.push(k.clone());
        }
        for (_, agent) in &scope.agents {
            if let Some(k) = &agent.api_key_env
                && !names.contains(&k.value)
            {
                names.push(k.value.clone());
            }
        }
    }
    names
}

impl Program {
    /// Where its instances run, as its `[executor]` says.
    pub(crate) fn executor_kind(&self) -> crate::model::ExecutorKind {
        self.executor
            .kind
            .as_ref()
            .map_or(crate::model::ExecutorKind::Local, |k| k.value)
    }

    /// The `sbatch` arguments of `node`'s jobs: the workflow's
    /// `[executor]`, the node's `executor` over it.
    pub(crate) fn sbatch_args(&self, node: NodeId) -> Vec<String> {
        self.executor.sbatch_args(self.node(node).executor.as_ref())
    }

    /// The variables that hold secrets: see [`secret_names`].
    pub(crate) fn secret_names(&self) -> Vec<String> {
        secret_names(&self.scopes)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    pub fn group(&self, id: GroupId) -> &Group {
        &self.groups[id.0]
    }

    /// Every node's id, in arena order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + use<> {
        (0..self.nodes.len()).map(NodeId)
    }

    /// The entry file's folder: what paths in it are relative to.
    pub fn entry_dir(&self) -> PathBuf {
        self.scopes
            .first()
            .map_or_else(PathBuf::new, |s| s.dir.clone())
    }

    /// The workflow's own `root`, relative to its file's folder.
    pub fn declared_root(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| self.entry_dir().join(r))
    }
}

/// An inline prompt: where its text is written, and the text itself.
#[derive(Debug, Clone)]
pub struct InlineTemplate {
    pub span: Span,
    pub text: String,
}

/// Built-in limits (docs/workflow-format.md, `stop`).
pub const DEFAULT_MAX_ITERATIONS: u32 = 10;
pub const DEFAULT_TIMEOUT_MS: u64 = 3_600_000;
pub const DEFAULT_MAX_ITEMS: u32 = 100;
