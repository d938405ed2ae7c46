//! The plan's data: what `plan --json` prints (docs/watch.md). No spans and no
//! absolute paths, so a TOML file and its KDL twin give the same bytes.

use std::sync::Arc;

use petgraph::graph::DiGraph;
use serde::Serialize;

/// The agent an instance runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AgentRef {
    pub name: String,
    pub kind: &'static str,
    pub model: Option<String>,
}

/// When an instance's loop ends.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StopPlan {
    /// Success conditions in force (the default one when none is written).
    pub success: serde_json::Map<String, serde_json::Value>,
    /// Whether every success condition must hold.
    pub all: bool,
    pub max_iterations: u32,
    pub timeout: String,
    pub idle_timeout: Option<String>,
    pub deadline: Option<String>,
    pub budget_usd: Option<f64>,
    pub budget_tokens: Option<u64>,
    pub stall: Option<u32>,
}

/// What an instance is.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InstanceKind {
    /// An agent on a prompt, in a Ralph loop.
    Agent {
        agent: Arc<AgentRef>,
        fallback_agents: Vec<Arc<AgentRef>>,
        stop: Arc<StopPlan>,
    },
    /// An expression over `needs`.
    Gate { expr: String },
    /// Lands the branches of isolated nodes' instances on one branch.
    Merge {
        from: Vec<String>,
        /// The target branch; the node's own integration branch when null.
        into: Option<String>,
        verify: Vec<String>,
        /// The agent that resolves conflicts; null: they are left unmerged.
        resolver: Option<MergeResolver>,
    },
    /// Instances that appear at run time, from an upstream answer.
    FanOut {
        from: String,
        path: Option<String>,
        lines: bool,
        max_items: u32,
        agent: Arc<AgentRef>,
        stop: Arc<StopPlan>,
    },
}

/// A merge node's resolving agent and its loop's stop.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MergeResolver {
    pub agent: Arc<AgentRef>,
    pub stop: Arc<StopPlan>,
}

/// One node instance.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Instance {
    /// `node`, `node[item]`, `node[k=v,..]` or `node[item][k=v,..]`; `node[*]` for run-time fan-out.
    pub key: Arc<str>,
    pub node: Arc<str>,
    pub description: Option<Arc<str>>,
    pub item: Option<serde_json::Value>,
    pub matrix: Option<serde_json::Map<String, serde_json::Value>>,
    /// Instance keys this one waits for.
    pub needs: Vec<Arc<str>>,
    #[serde(flatten)]
    pub kind: InstanceKind,
    /// Relative to the entry workflow file's folder.
    pub workdir: Arc<str>,
    pub inputs: Vec<String>,
    pub env: serde_json::Map<String, serde_json::Value>,
    pub on_failure: &'static str,
    pub max_parallel: Option<u32>,
    /// Sub-workflow nodes this instance belongs to, innermost first.
    pub groups: Vec<String>,
    /// Globs of the files it may change, relative to its workdir.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<String>,
    /// Where it runs when not in its workdir itself (docs/isolation.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation: Option<IsolationPlan>,
    /// The agent that resolves conflicts between its needs' branches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<MergeResolver>,
    /// The rendered first-iteration prompt (with `--show-prompts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The prompt's `vars`, their template strings rendered for this
    /// instance. Not shown: `--show-prompts` shows what they made.
    #[serde(skip)]
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// What rendering the prompt read (templates, environment variables):
    /// the fingerprint covers them (docs/watch.md).
    #[serde(skip)]
    pub(crate) reads: Arc<crate::prompt::Reads>,
}

/// An isolated instance's worktree, as planned: the commit is found when
/// an apply starts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IsolationPlan {
    /// `worktree` or `sandbox`.
    pub mode: &'static str,
    /// `HEAD`, a ref, or `working-tree`.
    pub base: String,
    /// Whether a sandboxed agent may use the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
}

/// The most that can run before anything runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorstCase {
    pub instances: usize,
    /// Instances x `max_iterations` (run-time fan-out at `max_items`); null when unbounded.
    pub agent_runs: Option<u64>,
    /// The sum of per-instance budgets, capped by `[limits] budget_usd`; null when some instance has none.
    pub budget_usd: Option<f64>,
    pub budget_tokens: Option<u64>,
    pub max_agents: Option<u32>,
}

/// A sub-workflow node.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupPlan {
    pub id: String,
    pub file: String,
    pub result: String,
    pub max_iterations: u32,
    pub success: Vec<String>,
}

/// A `[success]` command and where it runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SuccessCommand {
    pub command: String,
    /// Relative to the entry workflow file's folder.
    pub workdir: String,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub format_version: u32,
    pub workflow: String,
    pub project: String,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub instances: Vec<Instance>,
    pub sub_workflows: Vec<GroupPlan>,
    pub success: Vec<SuccessCommand>,
    pub worst_case: WorstCase,
    /// Edges from each instance to the ones that need it (indices into `instances`).
    #[serde(skip)]
    pub graph: DiGraph<usize, ()>,
    /// Each `for_each` glob as expanded, matches or not: its folder and
    /// its rendered pattern (a watch re-plans when what it finds changes).
    #[serde(skip)]
    pub globs: Vec<(std::path::PathBuf, String)>,
}
