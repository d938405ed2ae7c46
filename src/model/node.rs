//! The `[nodes.ID]` table: one step of the DAG, as written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::{Spanned, Stop, UserMap};

/// What a node does when its agent is done with an iteration that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Dependents are skipped and the apply exits 1 (the default).
    Fail,
    /// Dependents run; the apply exits 1 at the end.
    Continue,
    /// Dependents run; the exit code is unaffected.
    Ignore,
}

impl OnFailure {
    pub const ALL: [(&'static str, Self); 3] = [
        ("fail", Self::Fail),
        ("continue", Self::Continue),
        ("ignore", Self::Ignore),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("fail", |(n, _)| n)
    }
}

/// Where a node's instances run (docs/isolation.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// In the workdir itself, as every instance before (the default).
    None,
    /// Each instance in a git worktree of its own, on a branch of its own.
    Worktree,
    /// As `worktree`, the agent inside a bubblewrap sandbox.
    Sandbox,
}

impl Isolation {
    pub const ALL: [(&'static str, Self); 3] = [
        ("none", Self::None),
        ("worktree", Self::Worktree),
        ("sandbox", Self::Sandbox),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("none", |(n, _)| n)
    }
}

/// The prompt: inline template text, or a template file with variables.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Prompt {
    /// Inline minijinja template text.
    Inline(Spanned<String>),
    /// A template file from the prompt library.
    Template {
        /// Template name, looked up next to the workflow and in `[prompts] library`.
        template: Spanned<String>,
        /// Variables the template sees as `vars`.
        #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
        vars: UserMap<Spanned<serde_json::Value>>,
    },
}

/// Fan-out: one instance of the node per item.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum ForEach {
    /// Literal items.
    Items(Vec<Spanned<serde_json::Value>>),
    /// One instance per file matching the glob, relative to the workdir; expanded at plan time.
    Glob {
        /// The glob, relative to the node's workdir.
        glob: Spanned<String>,
    },
    /// Expanded at run time from an upstream node's answer.
    From {
        /// The upstream node.
        from: Spanned<String>,
        /// Dotted path into its JSON answer, such as `json.tasks`.
        path: Option<Spanned<String>>,
        /// One item per non-blank line of its answer.
        lines: Option<Spanned<bool>>,
        /// How each instance's key reads: a template over `item`, such as
        /// `{{ item.title }}` (docs/workflow-format.md, "Instance keys").
        key: Option<Spanned<String>>,
    },
    /// Mirror another fanned-out node's instances one to one.
    EachOf {
        /// The node whose instances to mirror.
        each_of: Spanned<String>,
    },
}

/// How a merge node lands its branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MergeStrategy {
    /// Each branch in turn onto the moving target, `verify` after each.
    Sequential,
}

impl MergeStrategy {
    pub(crate) const ALL: [(&'static str, Self); 1] = [("sequential", Self::Sequential)];
}

/// A merge node's `merge` table.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Merge {
    /// The isolated nodes whose instances' branches are merged, in this order.
    pub from: Vec<Spanned<String>>,
    /// The branch to land on; a new integration branch `conductor/<workflow>/<node>` when unset.
    pub into: Option<Spanned<String>>,
    /// `sequential` (the default, and the only one so far).
    pub strategy: Option<Spanned<MergeStrategy>>,
    /// Commands run in the merged tree after each branch; one that fails undoes that branch's merge.
    #[serde(default)]
    pub verify: Vec<Spanned<String>>,
    /// `fail` (the default: a conflicting branch is left unmerged) or an agent that resolves the conflict.
    pub on_conflict: Option<Spanned<String>>,
}

/// The format of a node's final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Text,
    Json,
}

/// What a node's answer must look like.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct OutputSpec {
    /// `json` makes the answer's JSON available as `json` to stop conditions and dependents.
    pub format: Spanned<OutputFormat>,
    /// A JSON Schema file the answer must validate against, relative to this file.
    pub schema: Option<Spanned<String>>,
}

/// One node of the workflow.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Node {
    /// The node id (the table key).
    #[schemars(skip)]
    pub id: Spanned<String>,
    /// What the node is for; shown by `plan`.
    pub description: Option<Spanned<String>>,
    /// Nodes that must be done before this one starts.
    #[serde(default)]
    pub needs: Vec<Spanned<String>>,
    /// The agent that runs the prompt (a name under `[agents]`, or `claude`, `codex`, `gemini`).
    pub agent: Option<Spanned<String>>,
    /// The prompt, rendered per iteration.
    pub prompt: Option<Prompt>,
    /// Another workflow file run as this node.
    pub workflow: Option<Spanned<String>>,
    /// Params for the sub-workflow.
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub with: UserMap<Spanned<serde_json::Value>>,
    /// A minijinja expression over `needs`; the node is done when it is true.
    pub gate: Option<Spanned<String>>,
    /// Lands the work of isolated nodes on a branch (docs/isolation.md, "Merge nodes").
    pub merge: Option<Merge>,
    /// Fan-out.
    pub for_each: Option<ForEach>,
    /// Cross the node with these values; `agent` and `model` override the node's.
    #[schemars(with = "Option<BTreeMap<String, Vec<serde_json::Value>>>")]
    pub matrix: UserMap<Vec<Spanned<serde_json::Value>>>,
    /// At most this many of this node's instances run at once.
    pub max_parallel: Option<Spanned<u32>>,
    /// Cap on run-time fan-out items (default 100).
    pub max_items: Option<Spanned<u32>>,
    /// Globs of files whose content feeds the node's fingerprint and the watcher.
    pub inputs: Option<Vec<Spanned<String>>>,
    /// The agent's working directory, relative to this file.
    pub workdir: Option<Spanned<String>>,
    /// Where each instance runs: `none`, `worktree` (a git worktree and branch of its own) or `sandbox` (that, inside bubblewrap).
    pub isolation: Option<Spanned<Isolation>>,
    /// The commit isolated instances start from: `HEAD` (the default), a ref, or `working-tree` (the checkout's uncommitted changes too).
    pub base: Option<Spanned<String>>,
    /// Whether a sandboxed agent may use the network (default true).
    pub network: Option<Spanned<bool>>,
    /// Globs of the files its instances may change, relative to the workdir: instances whose globs overlap never run at the same time.
    pub writes: Option<Vec<Spanned<String>>>,
    /// An isolated node's needs' branches that conflict: `fail` (the default) or an agent that resolves the conflict.
    pub on_conflict: Option<Spanned<String>>,
    /// What each of its instances' Slurm jobs asks for, over `[executor]` (no `kind`).
    pub executor: Option<super::Executor>,
    /// Environment variables for the agent.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub env: UserMap<Spanned<String>>,
    /// What a failure means for dependents and the exit code.
    pub on_failure: Option<Spanned<OnFailure>>,
    /// Agents to rotate to after an iteration fails with an agent error.
    pub fallback_agents: Option<Vec<Spanned<String>>>,
    /// When the loop ends.
    pub stop: Option<Stop>,
    /// The format of the final answer.
    pub output: Option<OutputSpec>,
}
