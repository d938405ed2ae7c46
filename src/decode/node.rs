//! Reads `[nodes.ID]` and `[defaults]` tables, with their unions: `prompt`
//! (text or template) and `for_each` (items, `glob`, `from`, `each_of`).

use super::read::{Cx, Fields};
use super::stop::decode_stop;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{
    Defaults, ForEach, Isolation, Merge, MergeStrategy, Node, OnFailure, OutputFormat, OutputSpec,
    Prompt, Spanned,
};
use crate::syntax::{Key, Table, Value, ValueKind};

/// Characters a node id may use: `/` joins sub-workflow ids and `[` starts an
/// instance key, so neither can appear in an id.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.')
}

pub(crate) fn decode_node(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Node> {
    if !valid_id(&key.name) {
        cx.diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                format!("`{}` is not a valid node id", key.name),
            )
            .label(key.span, "invalid id")
            .help("node ids use letters, digits, `-`, `_` and `.`, and do not start with `.`"),
        );
    }
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Node", format!("node `{}`", key.name));
    let shared = read_settings(cx, &mut f);
    let node = Node {
        id: Spanned::new(key.name.clone(), key.span),
        description: f.get("description").and_then(|(k, v)| cx.string(k, v)),
        needs: f
            .get("needs")
            .and_then(|(k, v)| cx.string_list(k, v))
            .unwrap_or_default(),
        agent: shared.agent,
        prompt: f.get("prompt").and_then(|(k, v)| decode_prompt(cx, k, v)),
        workflow: f.get("workflow").and_then(|(k, v)| cx.string(k, v)),
        with: f
            .get("with")
            .map(|(k, v)| cx.value_map(k, v))
            .unwrap_or_default(),
        gate: f.get("gate").and_then(|(k, v)| cx.string(k, v)),
        merge: f.get("merge").and_then(|(k, v)| decode_merge(cx, k, v)),
        for_each: f
            .get("for_each")
            .and_then(|(k, v)| decode_for_each(cx, k, v)),
        matrix: f
            .get("matrix")
            .map(|(k, v)| decode_matrix(cx, k, v))
            .unwrap_or_default(),
        max_parallel: shared.max_parallel,
        max_items: shared.max_items,
        inputs: shared.inputs,
        workdir: shared.workdir,
        isolation: shared.isolation,
        base: shared.base,
        network: shared.network,
        writes: f.get("writes").and_then(|(k, v)| cx.string_list(k, v)),
        on_conflict: f.get("on_conflict").and_then(|(k, v)| cx.string(k, v)),
        executor: f
            .get("executor")
            .and_then(|(k, v)| super::executor::decode_executor(cx, k, v, false)),
        env: shared.env,
        on_failure: shared.on_failure,
        fallback_agents: shared.fallback_agents,
        stop: shared.stop,
        output: f.get("output").and_then(|(k, v)| decode_output(cx, k, v)),
    };
    f.finish(cx);
    check_kind(cx, key, table, &node);
    Some(node)
}

/// What a node does: exactly one of these keys.
const KINDS: [&str; 4] = ["prompt", "workflow", "gate", "merge"];

/// A node is exactly one of: a prompt for an agent, a sub-workflow, a
/// gate, a merge.
fn check_kind(cx: &mut Cx<'_>, key: &Key, table: &Table, node: &Node) {
    let present: Vec<&Key> = table
        .entries
        .iter()
        .filter(|(k, _)| KINDS.contains(&k.name.as_str()))
        .map(|(k, _)| k)
        .collect();
    let near_miss = table.entries.iter().any(|(k, _)| {
        !crate::schema::keys("Node").contains(&k.name)
            && crate::diagnostic::did_you_mean(&k.name, KINDS).is_some()
    });
    if present.is_empty() && near_miss {
        // The misspelt key is reported as unknown, with "did you mean".
    } else if present.is_empty() {
        cx.diags.push(
            Diagnostic::error(Code::NodeKind, format!("node `{}` has nothing to do", key.name))
                .label(key.span, "this node")
                .help(format!(
                    "give it a `prompt` (run by its agent), a `workflow` (a sub-workflow file), a `gate` (an expression over `{}`) or a `merge` (of isolated nodes' branches)",
                    cx.spell("needs")
                )),
        );
    } else if present.len() > 1 {
        let names: Vec<String> = present.iter().map(|k| format!("`{}`", k.spelled)).collect();
        let mut d = Diagnostic::error(
            Code::ConflictingKeys,
            format!(
                "node `{}` sets {}: a node has only one of them",
                key.name,
                names.join(" and ")
            ),
        );
        for k in &present {
            d = d.label(k.span, format!("`{}` here", k.spelled));
        }
        cx.diags
            .push(d.help("split it into two nodes, the second one needing the first"));
    }
    if node.workflow.is_none()
        && let Some((k, _)) = table.entries.iter().find(|(k, _)| k.name == "with")
    {
        cx.diags.push(
            Diagnostic::error(
                Code::ConflictingKeys,
                format!("`{}` is only for sub-workflow nodes", k.spelled),
            )
            .label(k.span, "no `workflow` in this node")
            .help("pass values to the prompt with `vars` instead"),
        );
    }
    if node.workflow.is_some()
        && let Some((k, _)) = table.entries.iter().find(|(k, _)| k.name == "on_conflict")
    {
        cx.diags.push(
            Diagnostic::error(
                Code::ConflictingKeys,
                format!("a sub-workflow node has no `{}`", k.spelled),
            )
            .label(k.span, "not used by a sub-workflow")
            .help("set it on the isolated nodes inside the sub-workflow that need conflicting branches"),
        );
    }
    if node.merge.is_some() {
        for name in [
            "agent",
            "for_each",
            "matrix",
            "fallback_agents",
            "isolation",
            "base",
            "network",
            "writes",
            "output",
            "max_items",
            "max_parallel",
            "on_conflict",
        ] {
            if let Some((k, _)) = table.entries.iter().find(|(k, _)| k.name == name) {
                cx.diags.push(
                    Diagnostic::error(
                        Code::ConflictingKeys,
                        format!("a merge node has no `{}`", k.spelled),
                    )
                    .label(k.span, "not used by a merge")
                    .help(format!(
                        "a merge runs once, in a worktree of its own, when the nodes it merges are done; name the agent that resolves conflicts with `{}` in `merge`",
                        cx.spell("on_conflict")
                    )),
                );
            }
        }
    }
    if node.gate.is_some() {
        for name in [
            "agent",
            "for_each",
            "matrix",
            "stop",
            "fallback_agents",
            "isolation",
            "base",
            "network",
            "writes",
            "on_conflict",
        ] {
            if let Some((k, _)) = table.entries.iter().find(|(k, _)| k.name == name) {
                cx.diags.push(
                    Diagnostic::error(
                        Code::ConflictingKeys,
                        format!("a gate node has no `{}`", k.spelled),
                    )
                    .label(k.span, "not used by a gate")
                    .help(
                        "a gate is evaluated once, when every need is finished; it runs no agent",
                    ),
                );
            }
        }
    }
}

pub(crate) fn decode_defaults(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Defaults> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Defaults", format!("`{}`", key.spelled));
    let defaults = read_settings(cx, &mut f);
    f.finish(cx);
    Some(defaults)
}

/// The settings a node shares with `[defaults]`, read the same way in both.
fn read_settings(cx: &mut Cx<'_>, f: &mut Fields<'_>) -> Defaults {
    Defaults {
        agent: f.get("agent").and_then(|(k, v)| cx.string(k, v)),
        workdir: f.get("workdir").and_then(|(k, v)| cx.string(k, v)),
        isolation: f
            .get("isolation")
            .and_then(|(k, v)| cx.choice(k, v, &Isolation::ALL)),
        base: f.get("base").and_then(|(k, v)| cx.string(k, v)),
        network: f.get("network").and_then(|(k, v)| cx.boolean(k, v)),
        env: f
            .get("env")
            .map(|(k, v)| cx.env_map(k, v))
            .unwrap_or_default(),
        inputs: f.get("inputs").and_then(|(k, v)| cx.string_list(k, v)),
        on_failure: f
            .get("on_failure")
            .and_then(|(k, v)| cx.choice(k, v, &OnFailure::ALL)),
        fallback_agents: f
            .get("fallback_agents")
            .and_then(|(k, v)| cx.string_list(k, v)),
        max_parallel: f.get("max_parallel").and_then(|(k, v)| cx.count(k, v)),
        max_items: f.get("max_items").and_then(|(k, v)| cx.count(k, v)),
        stop: f.get("stop").and_then(|(k, v)| decode_stop(cx, k, v)),
    }
}

fn decode_prompt(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Prompt> {
    match &value.kind {
        ValueKind::String(s) => Some(Prompt::Inline(Spanned::new(s.clone(), value.span))),
        ValueKind::Table(t) => {
            let mut f =
                Fields::with_keys(t, vec!["template", "vars"], format!("`{}`", key.spelled));
            let template = f.get("template").and_then(|(k, v)| cx.string(k, v));
            let vars = f
                .get("vars")
                .map(|(k, v)| cx.value_map(k, v))
                .unwrap_or_default();
            f.finish(cx);
            if template.is_none() {
                cx.missing(
                    key.span,
                    "template",
                    &format!("`{}`", key.spelled),
                    "name a template file, or write the prompt inline as a string",
                );
            }
            Some(Prompt::Template {
                template: template?,
                vars,
            })
        }
        _ => {
            cx.wrong_type(key, value, "a string or a table with `template`");
            None
        }
    }
}

fn decode_merge(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Merge> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Merge", format!("`{}`", key.spelled));
    let from = f.get("from").and_then(|(k, v)| cx.string_list(k, v));
    let merge = Merge {
        into: f.get("into").and_then(|(k, v)| cx.string(k, v)),
        strategy: f
            .get("strategy")
            .and_then(|(k, v)| cx.choice(k, v, &MergeStrategy::ALL)),
        verify: f
            .get("verify")
            .and_then(|(k, v)| cx.string_list(k, v))
            .unwrap_or_default(),
        on_conflict: f.get("on_conflict").and_then(|(k, v)| cx.string(k, v)),
        from: from.clone().unwrap_or_default(),
    };
    f.finish(cx);
    match (from, table.get("from")) {
        (_, None) => cx.missing(
            key.span,
            "from",
            &format!("`{}`", key.spelled),
            "name the isolated nodes whose work it lands, such as `from = [\"worker\"]`",
        ),
        (Some(list), Some(written)) if list.is_empty() => cx.invalid(
            written,
            "`from` names no node".to_string(),
            Some("name the isolated nodes whose work it lands".to_string()),
        ),
        _ => {}
    }
    Some(merge)
}

fn decode_for_each(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<ForEach> {
    match &value.kind {
        ValueKind::Array(items) => Some(ForEach::Items(
            items
                .iter()
                .map(|v| Spanned::new(cx.json(v), v.span))
                .collect(),
        )),
        ValueKind::Table(t) => decode_for_each_table(cx, key, t),
        _ => {
            cx.wrong_type(
                key,
                value,
                "a list of items or a table (`glob`, `from` or `each_of`)",
            );
            None
        }
    }
}

fn decode_for_each_table(cx: &mut Cx<'_>, key: &Key, t: &Table) -> Option<ForEach> {
    let what = format!("`{}`", key.spelled);
    let has = |n: &str| t.get(n).is_some();
    if has("glob") {
        let mut f = Fields::with_keys(t, vec!["glob"], what);
        let glob = f.get("glob").and_then(|(k, v)| cx.string(k, v));
        f.finish(cx);
        return Some(ForEach::Glob { glob: glob? });
    }
    if has("from") {
        let mut f = Fields::with_keys(t, vec!["from", "path", "lines", "key"], what);
        let from = f.get("from").and_then(|(k, v)| cx.string(k, v));
        let path = f.get("path").and_then(|(k, v)| cx.string(k, v));
        let lines = f.get("lines").and_then(|(k, v)| cx.boolean(k, v));
        let key = f.get("key").and_then(|(k, v)| cx.string(k, v));
        f.finish(cx);
        return Some(ForEach::From {
            from: from?,
            path,
            lines,
            key,
        });
    }
    if has("each_of") {
        let mut f = Fields::with_keys(t, vec!["each_of"], what);
        let each_of = f.get("each_of").and_then(|(k, v)| cx.string(k, v));
        f.finish(cx);
        return Some(ForEach::EachOf { each_of: each_of? });
    }
    let f = Fields::with_keys(
        t,
        vec!["glob", "from", "path", "lines", "key", "each_of"],
        what,
    );
    f.finish(cx);
    cx.diags.push(
        Diagnostic::error(Code::FanOut, format!("{} names no source of items", key.spelled))
            .label(t.span, "no `glob`, `from` or `each_of`")
            .help(format!(
                "write a list of items, `{{ glob = \"docs/*.md\" }}`, `{{ from = \"plan\", path = \"json.tasks\" }}` or `{{ {} = \"other-node\" }}`",
                cx.spell("each_of")
            )),
    );
    None
}

fn decode_matrix(
    cx: &mut Cx<'_>,
    key: &Key,
    value: &Value,
) -> Vec<(Spanned<String>, Vec<Spanned<serde_json::Value>>)> {
    let Some(t) = cx.table(key, value) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in &t.entries {
        match &v.kind {
            ValueKind::Array(items) if !items.is_empty() => out.push((
                Spanned::new(k.name.clone(), k.span),
                items
                    .iter()
                    .map(|i| Spanned::new(cx.json(i), i.span))
                    .collect(),
            )),
            ValueKind::Array(_) => cx.invalid(
                v,
                format!("matrix axis `{}` has no values", k.spelled),
                Some("give it at least one value, or remove it".to_string()),
            ),
            _ => cx.wrong_type(k, v, "a list of values"),
        }
    }
    out
}

fn decode_output(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<OutputSpec> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "OutputSpec", format!("`{}`", key.spelled));
    let format = f.get("format").and_then(|(k, v)| {
        cx.choice(
            k,
            v,
            &[("text", OutputFormat::Text), ("json", OutputFormat::Json)],
        )
    });
    let schema = f.get("schema").and_then(|(k, v)| cx.string(k, v));
    f.finish(cx);
    if table.get("format").is_none() {
        let help = format!(
            "add {}",
            cx.example(
                "`format = \"json\"` or `format = \"text\"`",
                "`format=\"json\"` or `format=\"text\"`"
            )
        );
        cx.missing(key.span, "format", &format!("`{}`", key.spelled), &help);
    }
    Some(OutputSpec {
        format: format?,
        schema,
    })
}
