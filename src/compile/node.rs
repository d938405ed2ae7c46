//! Compiles one agent or gate node: merges its defaults, resolves its agents,
//! registers and checks its prompt, and checks its fan-out source, globs and
//! output schema.

use super::builder::Builder;
use super::program::{Action, DEFAULT_MAX_ITEMS, GroupId, Node, NodeId};
use crate::diagnostic::{Code, Diagnostic, suggestion_help};
use crate::model::{
    self, Agent, Defaults, ForEach, Isolation, OnFailure, OutputFormat, Prompt, Spanned,
};
use crate::prompt::is_templated;
use crate::source::Syntax;

impl Builder {
    /// Adds the node to the arena; `None` when it is too broken to plan.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site; a struct would only rename them"
    )]
    pub(super) fn node(
        &mut self,
        scope: usize,
        local: &model::Node,
        defaults: &Defaults,
        needs: Vec<usize>,
        needs_by_name: Vec<(String, usize)>,
        fan_out_source: Option<usize>,
        up: &super::builder::Inherited<'_>,
        siblings: &[model::Node],
    ) -> Option<Node> {
        let id = format!("{}{}", self.scopes[scope].prefix, local.id.value);
        let stop = match (&local.stop, &defaults.stop) {
            (Some(own), Some(base)) => own.merged_over(base),
            (own, base) => own.clone().or_else(|| base.clone()).unwrap_or_default(),
        };
        let mut env = defaults.env.clone();
        for (k, v) in &local.env {
            env.retain(|(pk, _)| pk.value != k.value);
            env.push((k.clone(), v.clone()));
        }
        // A merge node's agent is the one that resolves its conflicts.
        let agent = match &local.merge {
            Some(m) => m.on_conflict.clone().filter(|a| a.value != "fail"),
            None => local.agent.clone().or_else(|| defaults.agent.clone()),
        };
        let fallback_agents = if local.merge.is_some() {
            Vec::new()
        } else {
            local
                .fallback_agents
                .clone()
                .or_else(|| defaults.fallback_agents.clone())
                .unwrap_or_default()
        };
        let names: Vec<String> = needs_by_name.iter().map(|(n, _)| n.clone()).collect();
        let action = if let Some(gate) = &local.gate {
            self.check_gate(scope, gate, &names);
            Some(Action::Gate { expr: gate.clone() })
        } else if let Some(merge) = &local.merge {
            self.merge_action(scope, local, merge, &needs_by_name, siblings)
        } else {
            let matrix_agent = local.matrix.iter().any(|(axis, _)| axis.value == "agent");
            match &agent {
                Some(a) => self.check_agent_name(scope, a),
                // A matrix `agent` axis names the agent of every instance.
                None if matrix_agent => {}
                None => self.diags.push(
                    Diagnostic::error(
                        Code::MissingKey,
                        format!("node `{}` has no agent", local.id.value),
                    )
                    .label(local.id.span, "no `agent` here or in the defaults")
                    .help("set `agent` on the node, or in `[defaults]` for every node"),
                ),
            }
            for f in &fallback_agents {
                self.check_agent_name(scope, f);
            }
            for (axis, values) in &local.matrix {
                if axis.value == "agent" {
                    for v in values {
                        if let Some(s) = v.value.as_str() {
                            self.check_agent_name(scope, &Spanned::new(s.to_string(), v.span));
                        }
                    }
                }
            }
            let prompt = local.prompt.as_ref()?;
            let template = self.register_prompt(scope, &local.id.value, prompt);
            let vars = match prompt {
                Prompt::Template { vars, .. } => vars
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.value.clone()))
                    .collect(),
                Prompt::Inline(_) => serde_json::Map::new(),
            };
            if let Some(template) = &template {
                let has_item = local.for_each.is_some();
                let has_matrix = !local.matrix.is_empty();
                self.check_prompt_variables(scope, template, &vars, &names, has_item, has_matrix);
            }
            // Without a usable template the node is not planned, but its other
            // keys are still checked below.
            template.map(|template| Action::Prompt { template, vars })
        };
        if let Some(expr) = &stop.expr {
            self.check_expression(scope, expr, None);
        }
        self.check_fan_out(scope, local, siblings);
        let workdir = local
            .workdir
            .clone()
            .or_else(|| defaults.workdir.clone())
            .map(|w| (w, scope))
            .or_else(|| up.workdir.clone());
        let inputs = local
            .inputs
            .clone()
            .or_else(|| defaults.inputs.clone())
            .unwrap_or_default();
        for g in &inputs {
            self.check_glob(g);
        }
        let writes = local.writes.clone().unwrap_or_default();
        for g in &writes {
            self.check_glob(g);
        }
        if let Some(schema) = local.output.as_ref().and_then(|o| o.schema.as_ref()) {
            self.check_schema_file(scope, schema);
        }
        if let Some(command) = &stop.command {
            self.check_shell_values(command, true);
        }
        // The templated strings rendered for the plan read no secret.
        let strings = env
            .iter()
            .map(|(_, v)| v)
            .chain(workdir.as_ref().map(|(w, _)| w))
            .chain(&inputs)
            .chain(
                [&stop.command, &stop.promise, &stop.output_matches]
                    .into_iter()
                    .flatten(),
            );
        let mut strings: Vec<Spanned<String>> = strings.cloned().collect();
        if let Some(Prompt::Template { vars, .. }) = &local.prompt {
            strings.extend(vars.iter().filter_map(|(_, v)| {
                v.value
                    .as_str()
                    .map(|s| Spanned::new(s.to_string(), v.span))
            }));
        }
        for text in &strings {
            self.check_no_secret(scope, text);
        }
        let (isolation, base) = if local.merge.is_some() {
            // A merge works in a worktree of its own, from the base its
            // first node's instances started from.
            let first = local
                .merge
                .iter()
                .flat_map(|m| &m.from)
                .find_map(|f| needs_by_name.iter().find(|(n, _)| *n == f.value))
                .map(|&(_, at)| &self.nodes[at]);
            (Isolation::Worktree, first.and_then(|n| n.base.clone()))
        } else {
            (
                local
                    .isolation
                    .as_ref()
                    .or(defaults.isolation.as_ref())
                    .map_or(Isolation::None, |i| i.value),
                local.base.clone().or_else(|| defaults.base.clone()),
            )
        };
        let network = local.network.clone().or_else(|| defaults.network.clone());
        if local.merge.is_none() {
            self.check_isolation(&local.id.value, isolation, base.as_ref(), network.as_ref());
        }
        let resolver = self.fan_in_resolver(scope, local, isolation);
        Some(Node {
            action: action?,
            id,
            scope,
            span: local.id.span,
            description: local.description.as_ref().map(|d| d.value.clone()),
            needs: needs.into_iter().map(NodeId::new).collect(),
            needs_by_name: needs_by_name
                .into_iter()
                .map(|(name, i)| (name, NodeId::new(i)))
                .collect(),
            agent,
            fallback_agents,
            for_each: local.for_each.clone(),
            fan_out_source: fan_out_source.map(NodeId::new),
            matrix: local.matrix.clone(),
            workdir,
            inputs,
            env,
            on_failure: local
                .on_failure
                .as_ref()
                .or(defaults.on_failure.as_ref())
                .map_or(OnFailure::Fail, |o| o.value),
            stop,
            output: local.output.clone(),
            max_parallel: local
                .max_parallel
                .as_ref()
                .or(defaults.max_parallel.as_ref())
                .map(|m| m.value),
            max_items: local
                .max_items
                .as_ref()
                .or(defaults.max_items.as_ref())
                .map_or(DEFAULT_MAX_ITEMS, |m| m.value),
            isolation,
            base,
            network: network.is_none_or(|n| n.value),
            writes,
            executor: local.executor.clone(),
            resolver,
            groups: up.groups.iter().copied().map(GroupId::new).collect(),
        })
    }

    /// `base` is for isolated nodes and `network` for sandboxed ones; a
    /// base is a ref or `working-tree`, never something git reads as an
    /// option.
    fn check_isolation(
        &mut self,
        node: &str,
        isolation: Isolation,
        base: Option<&Spanned<String>>,
        network: Option<&Spanned<bool>>,
    ) {
        if let Some(base) = base {
            if isolation == Isolation::None {
                self.diags.push(
                    Diagnostic::error(
                        Code::ConflictingKeys,
                        format!("node `{node}` sets `base` but is not isolated"),
                    )
                    .label(base.span, "only isolated instances start from a base")
                    .help("set `isolation = \"worktree\"` (or `\"sandbox\"`) on the node or in `[defaults]`, or remove `base`"),
                );
            } else if base.value.is_empty()
                || base.value.starts_with('-')
                || base
                    .value
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                self.diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("`{}` is not a git ref", base.value),
                    )
                    .label(base.span, "not a ref")
                    .help("name a branch, tag or commit (`main`, `v1.2`, `HEAD~1`), or `working-tree` for the checkout with its uncommitted changes"),
                );
            }
        }
        if let Some(network) = network
            && isolation != Isolation::Sandbox
        {
            self.diags.push(
                Diagnostic::error(
                    Code::ConflictingKeys,
                    format!("node `{node}` sets `network` but is not sandboxed"),
                )
                .label(network.span, "only a sandbox can take the network away")
                .help("set `isolation = \"sandbox\"`, or remove `network`"),
            );
        }
    }

    /// An agent name must be declared, or be a built-in preset. Templated
    /// names are checked per instance when planning.
    pub(super) fn check_agent_name(&mut self, scope: usize, name: &Spanned<String>) {
        if is_templated(&name.value)
            || self.scopes[scope].agent(&name.value).is_some()
            || Agent::builtin(&name.value, name.span).is_some()
        {
            return;
        }
        let declared: Vec<&str> = self.scopes[scope]
            .agents
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(["claude", "codex", "gemini"])
            .collect();
        self.diags.push(
            Diagnostic::error(
                Code::UnknownAgent,
                format!("unknown agent `{}`", name.value),
            )
            .label(
                name.span,
                if self.syntax(scope) == Syntax::Kdl {
                    "no `agent` node declares it"
                } else {
                    "not declared under `[agents]`"
                },
            )
            .maybe_help(suggestion_help(
                &name.value,
                declared.iter().copied(),
                "the agents are",
            )),
        );
    }

    /// The syntax of a scope's file, so that help lines quote the user's own form.
    pub(super) fn syntax(&self, scope: usize) -> Syntax {
        self.sources.get(self.scopes[scope].file).syntax
    }

    fn check_fan_out(&mut self, scope: usize, local: &model::Node, siblings: &[model::Node]) {
        let sibling = |id: &str| siblings.iter().find(|n| n.id.value == id);
        let kdl = self.syntax(scope) == Syntax::Kdl;
        let (for_each, each_of_key) = if kdl {
            ("for-each", "each-of")
        } else {
            ("for_each", "each_of")
        };
        let lines_true = if kdl {
            "`lines=#true`"
        } else {
            "`lines = true`"
        };
        let path_example = if kdl {
            "`path=\"json.items\"`"
        } else {
            "`path = \"json.items\"`"
        };
        let json_output = if kdl {
            "`output format=\"json\"`"
        } else {
            "`output = { format = \"json\" }`"
        };
        match &local.for_each {
            Some(ForEach::Glob { glob }) => self.check_glob(glob),
            Some(ForEach::From {
                from,
                path,
                lines,
                key,
            }) => {
                if let Some(key) = key {
                    self.check_key_template(scope, key);
                }
                let lines_on = lines.as_ref().is_some_and(|l| l.value);
                match (path, lines_on) {
                    (Some(p), true) => self.diags.push(
                        Diagnostic::error(Code::FanOut, format!("`{for_each}` sets both `path` and `lines`"))
                            .label(p.span, "take items from this JSON path")
                            .help(format!("keep `path` to read items from the JSON answer, or {lines_true} to read one item per line")),
                    ),
                    (None, false) => self.diags.push(
                        Diagnostic::error(Code::FanOut, format!("`{for_each}` from `{}` does not say where the items are", from.value))
                            .label(from.span, "items from this node's answer")
                            .help(format!("add {path_example} (a JSON answer) or {lines_true} (one item per line)")),
                    ),
                    (Some(p), false) => {
                        if p.value != "json" && !p.value.starts_with("json.") {
                            self.diags.push(
                                Diagnostic::error(Code::FanOut, format!("`path` \"{}\" does not start with `json`", p.value))
                                    .label(p.span, "not a path into the JSON answer")
                                    .help("write a dotted path into the upstream node's JSON answer, such as `json.tasks` or `json.items.0.files`"),
                            );
                        }
                        if let Some(src) = sibling(&from.value)
                            && src.output.as_ref().is_none_or(|o| o.format.value != OutputFormat::Json)
                        {
                            self.diags.push(
                                Diagnostic::error(Code::FanOut, format!("node `{}` does not produce JSON, so `path` cannot read items from it", from.value))
                                    .label(p.span, "needs a JSON answer")
                                    .label(src.id.span, "this node's answer is text")
                                    .help(format!("add {json_output} to node `{}`, or use {lines_true}", from.value)),
                            );
                        }
                    }
                    (None, true) => {}
                }
            }
            Some(ForEach::EachOf { each_of }) => {
                if let Some(src) = sibling(&each_of.value)
                    && src.for_each.is_none()
                    && src.matrix.is_empty()
                {
                    self.diags.push(
                        Diagnostic::error(Code::FanOut, format!("node `{}` is not fanned out, so there is nothing to mirror", each_of.value))
                            .label(each_of.span, "mirrors this node's instances")
                            .label(src.id.span, "this node has one instance")
                            .help(format!("`{each_of_key}` mirrors a node that has `{for_each}` or `matrix`; to just wait for it, use `needs`")),
                    );
                }
            }
            Some(ForEach::Items(_)) | None => {}
        }
    }

    pub(super) fn check_glob(&mut self, glob: &Spanned<String>) {
        if is_templated(&glob.value) {
            return;
        }
        if let Err(e) = globset::Glob::new(&glob.value) {
            self.diags.push(
                Diagnostic::error(
                    Code::BadGlob,
                    format!("`{}` is not a valid glob", glob.value),
                )
                .label(glob.span, e.kind().to_string())
                .help("globs use `*`, `**`, `?`, `[abc]` and `{a,b}`, such as \"src/**/*.rs\""),
            );
        }
    }

    fn check_schema_file(&mut self, scope: usize, schema: &Spanned<String>) {
        let path = self.scopes[scope].dir.join(&schema.value);
        if let Some(d) = super::schema_file::check(&path, schema, &mut self.sources) {
            self.diags.push(d);
        }
    }
}
