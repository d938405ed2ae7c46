//! Compiles a merge node's `merge` table (docs/isolation.md, "Merge
//! nodes"): the nodes it lands are nodes it needs and are isolated, its
//! target is a branch name git can take, and a resolving agent gets the
//! built-in prompt it is told each conflict with.

use super::builder::Builder;
use super::program::{Action, MergeSpec, NodeId};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{self, Isolation, Spanned};

/// Where conductor's own branches live (docs/isolation.md, "Branches and
/// worktrees"): a merge never lands on them. The isolation layer names its
/// branches with these, and a test there holds the two together.
pub(crate) const OWN_BRANCHES: [&str; 2] = ["conductor/", "conductor-kept/"];

/// What the resolving agent is told, per conflict, as its `item`.
const RESOLVE_PROMPT: &str = include_str!("resolve_prompt.md");

impl Builder {
    /// The merge action of `local`; `None` when it cannot be planned.
    pub(super) fn merge_action(
        &mut self,
        scope: usize,
        local: &model::Node,
        merge: &model::Merge,
        needs_by_name: &[(String, usize)],
        siblings: &[model::Node],
    ) -> Option<Action> {
        let mut from = Vec::new();
        for f in &merge.from {
            if siblings
                .iter()
                .any(|n| n.id.value == f.value && n.workflow.is_some())
            {
                self.diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!(
                            "node `{}` merges `{}`, a sub-workflow node: a merge takes the nodes whose instances have branches",
                            local.id.value, f.value
                        ),
                    )
                    .label(f.span, "a sub-workflow")
                    .help("merge the sub-workflow's isolated nodes in a merge node of that workflow, or merge its branches with a node of this one that needs it"),
                );
                continue;
            }
            // An unknown name is reported with the other dependencies.
            let Some(&(_, at)) = needs_by_name.iter().find(|(n, _)| *n == f.value) else {
                continue;
            };
            if from.contains(&NodeId::new(at)) {
                continue;
            }
            if self.nodes[at].isolation == Isolation::None {
                self.diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!(
                            "node `{}` merges `{}`, which is not isolated: its work has no branch to merge",
                            local.id.value, f.value
                        ),
                    )
                    .label(f.span, "not isolated")
                    .help(format!(
                        "set `isolation = \"worktree\"` on node `{}` (or in `[defaults]`), so that each of its instances works on a branch of its own",
                        f.value
                    )),
                );
            }
            from.push(NodeId::new(at));
        }
        if let Some(into) = &merge.into {
            check_branch(into, &mut self.diags);
        }
        let resolver = match &merge.on_conflict {
            Some(agent) if agent.value != "fail" => {
                self.check_agent_name(scope, agent);
                let name = format!("<{} resolve>", local.id.value);
                if let Err(e) = self.scopes[scope]
                    .templates
                    .add_template_owned(name.clone(), RESOLVE_PROMPT)
                {
                    tracing::error!("the built-in resolve prompt does not compile: {e}");
                    return None;
                }
                Some(name)
            }
            _ => None,
        };
        Some(Action::Merge(std::sync::Arc::new(MergeSpec {
            from,
            into: merge.into.as_ref().map(|i| i.value.clone()),
            verify: merge.verify.iter().map(|v| v.value.clone()).collect(),
            resolver,
        })))
    }
}

impl Builder {
    /// The agent that resolves conflicts between an isolated node's needs'
    /// branches, and the template it is told each with; `None` for
    /// `on_conflict = "fail"` (or none).
    pub(super) fn fan_in_resolver(
        &mut self,
        scope: usize,
        local: &model::Node,
        isolation: Isolation,
    ) -> Option<(Spanned<String>, String)> {
        let agent = local.on_conflict.as_ref().filter(|a| a.value != "fail")?;
        if isolation == Isolation::None {
            self.diags.push(
                Diagnostic::error(
                    Code::ConflictingKeys,
                    format!(
                        "node `{}` sets `on_conflict` but is not isolated",
                        local.id.value
                    ),
                )
                .label(agent.span, "only an isolated node merges its needs' branches")
                .help("set `isolation = \"worktree\"` on the node or in `[defaults]`, or remove `on_conflict`"),
            );
            return None;
        }
        self.check_agent_name(scope, agent);
        let name = format!("<{} resolve>", local.id.value);
        self.scopes[scope]
            .templates
            .add_template_owned(name.clone(), RESOLVE_PROMPT)
            .ok()?;
        Some((agent.clone(), name))
    }
}

/// `into` must be a branch name, and never one git would read as an option.
#[expect(
    clippy::case_sensitive_file_extension_comparisons,
    reason = "git refuses names ending in exactly `.lock`"
)]
fn check_branch(into: &Spanned<String>, diags: &mut crate::diagnostic::Diagnostics) {
    let name = into.value.as_str();
    let bad = name.is_empty()
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name == "HEAD"
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    let ours = OWN_BRANCHES.iter().any(|p| name.starts_with(p));
    if ours {
        diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                format!("`{name}` is one of conductor's own branches"),
            )
            .label(into.span, "conductor's branch")
            .help("land on a branch of yours (`main`, `integration`); without `into` the merge's work stays on its own branch `conductor/<workflow>/<node>`"),
        );
        return;
    }
    if bad {
        diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                format!("`{name}` is not a branch name"),
            )
            .label(into.span, "not a branch name")
            .help("name a branch such as `main` or `integration/today`: no spaces, `..`, `~^:?*[\\`, and not starting with `-`"),
        );
    }
}
