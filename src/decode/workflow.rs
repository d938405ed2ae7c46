//! Reads the top level of a workflow file.

use super::agent::decode_agent;
use super::node::{decode_defaults, decode_node, valid_id};
use super::read::{Cx, Fields};
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::{
    Limits, Notify, Param, ParamType, Prompts, Spanned, Success, Workflow, json_type_name,
};
use crate::source::{Span, Syntax};
use crate::syntax::{Key, Table, Value, ValueKind};

/// Reads a whole file's tree. Returns `None` only when the file is too broken
/// to be used at all (no `name`, no `version`); other problems are recorded
/// and the rest of the file is still read.
pub(crate) fn decode_workflow(
    root: &Table,
    syntax: Syntax,
    diags: &mut Diagnostics,
) -> Option<Workflow> {
    let mut cx = Cx { diags, syntax };
    let cx = &mut cx;
    let mut f = Fields::new(root, "Workflow", "a workflow");
    let version = match f.get("version") {
        Some((k, v)) => cx.integer(k, v).and_then(|ver| {
            if ver.value == 1 {
                Some(ver)
            } else {
                cx.diags.push(
                    Diagnostic::error(
                        Code::UnsupportedVersion,
                        format!("workflow format version {} is not supported", ver.value),
                    )
                    .label(ver.span, "unsupported version")
                    .help("this conductor reads version 1; write `version = 1`"),
                );
                None
            }
        }),
        None => {
            let help = format!(
                "add `{}` at the top of the file",
                cx.example("version = 1", "version 1")
            );
            cx.missing(file_start(root), "version", "the workflow", &help);
            None
        }
    };
    let name = match f.get("name") {
        Some((k, v)) => cx.string(k, v),
        None => {
            let help = format!(
                "add a name, such as `{}`",
                cx.example("name = \"my-workflow\"", "name \"my-workflow\"")
            );
            cx.missing(file_start(root), "name", "the workflow", &help);
            None
        }
    };
    let description = f.get("description").and_then(|(k, v)| cx.string(k, v));
    let project = f.get("project").and_then(|(k, v)| cx.string(k, v)).filter(|p| {
        let ok = crate::store::is_project_id(&p.value);
        if !ok {
            cx.diags.push(
                Diagnostic::error(Code::InvalidValue, format!("`{}` is not a valid project id", p.value))
                    .label(p.span, "not a project id")
                    .help("a project id is lower-case letters, digits and `-`, such as \"conductor-loop\"; it names a folder of the run store"),
            );
        }
        ok
    });
    let root_dir = f.get("root").and_then(|(k, v)| cx.string(k, v));
    let output = f.get("output").and_then(|(k, v)| cx.string(k, v));
    let params = f
        .get("params")
        .map(|(k, v)| decode_params(cx, k, v))
        .unwrap_or_default();
    let defaults = f
        .get("defaults")
        .and_then(|(k, v)| decode_defaults(cx, k, v));
    let agents = f
        .get("agents")
        .and_then(|(k, v)| cx.table(k, v))
        .map(|t| {
            t.entries
                .iter()
                .filter_map(|(k, v)| {
                    Some((
                        Spanned::new(k.name.clone(), k.span),
                        decode_agent(cx, k, v)?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let prompts = f.get("prompts").and_then(|(k, v)| decode_prompts(cx, k, v));
    let nodes = match f.get("nodes") {
        Some((k, v)) => cx
            .table(k, v)
            .inspect(|t| {
                if t.entries.is_empty() {
                    cx.diags.push(
                        Diagnostic::error(Code::MissingKey, "the workflow has no nodes")
                            .label(k.span, "empty")
                            .help("add at least one node, such as `[nodes.hello]` with a `prompt`"),
                    );
                }
            })
            .map(|t| {
                t.entries
                    .iter()
                    .filter_map(|(k, v)| decode_node(cx, k, v))
                    .collect()
            })
            .unwrap_or_default(),
        None => {
            let help = format!(
                "add at least one node, such as `{}` with a `prompt`",
                cx.example("[nodes.hello]", "node \"hello\" { .. }")
            );
            cx.diags.push(
                Diagnostic::error(Code::MissingKey, "the workflow has no nodes")
                    .label(file_start(root), "no nodes in this file")
                    .help(help),
            );
            Vec::new()
        }
    };
    let success = f.get("success").and_then(|(k, v)| decode_success(cx, k, v));
    let limits = f.get("limits").and_then(|(k, v)| decode_limits(cx, k, v));
    let notify = f.get("notify").and_then(|(k, v)| decode_notify(cx, k, v));
    let executor = f
        .get("executor")
        .and_then(|(k, v)| super::executor::decode_executor(cx, k, v, true));
    f.finish(cx);
    Some(Workflow {
        version: version?,
        name: name?,
        description,
        project,
        root: root_dir,
        output,
        params,
        defaults,
        agents,
        prompts,
        nodes,
        success,
        limits,
        notify,
        executor,
    })
}

/// A point at the very start of the file, for what the whole file lacks.
fn file_start(root: &Table) -> Span {
    Span {
        end: root.span.start,
        ..root.span
    }
}

fn decode_params(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Vec<Param> {
    let Some(t) = cx.table(key, value) else {
        return Vec::new();
    };
    t.entries
        .iter()
        .filter_map(|(k, v)| decode_param(cx, k, v))
        .collect()
}

fn decode_param(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Param> {
    if !valid_id(&key.name) || key.name.contains(['-', '.']) {
        cx.diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                format!("`{}` is not a valid param name", key.name),
            )
            .label(key.span, "invalid name")
            .help(
                "param names are used in templates as `params.NAME`: use letters, digits and `_`",
            ),
        );
    }
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Param", format!("param `{}`", key.name));
    let ty = match f.get("type") {
        Some((k, v)) => cx.choice(k, v, &ParamType::ALL),
        None => {
            cx.missing(
                key.span,
                "type",
                &format!("param `{}`", key.name),
                "add `type`: one of string, int, bool, path, list",
            );
            None
        }
    };
    let default = f
        .get("default")
        .map(|(_, v)| Spanned::new(cx.json(v), v.span));
    let choices = f.get("enum").and_then(|(k, v)| match &v.kind {
        ValueKind::Array(items) => Some(
            items
                .iter()
                .map(|i| Spanned::new(cx.json(i), i.span))
                .collect::<Vec<_>>(),
        ),
        _ => {
            cx.wrong_type(k, v, "a list of values");
            None
        }
    });
    let description = f.get("description").and_then(|(k, v)| cx.string(k, v));
    f.finish(cx);
    let ty = ty?;
    for v in choices.iter().flatten().chain(default.as_ref()) {
        if !ty.value.accepts(&v.value) {
            cx.diags.push(
                Diagnostic::error(
                    Code::ParamType,
                    format!(
                        "param `{}` is of type {} but this value is {}",
                        key.name,
                        ty.value.as_str(),
                        json_type_name(&v.value)
                    ),
                )
                .label(v.span, format!("expected {}", ty.value.as_str()))
                .label(ty.span, "the type is declared here")
                .help(format!(
                    "write {} such as {}",
                    ty.value.with_article(),
                    ty.value.example()
                )),
            );
        }
    }
    if let (Some(d), Some(choices)) = (&default, &choices)
        && !choices.iter().any(|c| c.value == d.value)
    {
        let allowed: Vec<String> = choices.iter().map(|c| c.value.to_string()).collect();
        cx.diags.push(
            Diagnostic::error(
                Code::ParamType,
                format!(
                    "the default of param `{}` is not one of its `enum` values",
                    key.name
                ),
            )
            .label(d.span, "not in the enum")
            .help(format!("choose one of {}", allowed.join(", "))),
        );
    }
    Some(Param {
        name: Spanned::new(key.name.clone(), key.span),
        ty,
        default,
        choices,
        description,
    })
}

fn decode_prompts(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Prompts> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Prompts", format!("`{}`", key.spelled));
    let library = f
        .get("library")
        .and_then(|(k, v)| cx.string_list(k, v))
        .unwrap_or_default();
    f.finish(cx);
    Some(Prompts { library })
}

fn decode_success(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Success> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Success", format!("`{}`", key.spelled));
    let commands = f
        .get("commands")
        .and_then(|(k, v)| cx.string_list(k, v))
        .unwrap_or_default();
    f.finish(cx);
    Some(Success { commands })
}

fn decode_notify(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Notify> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Notify", format!("`{}`", key.spelled));
    let webhook = match f.get("webhook") {
        Some((k, v)) => cx.string(k, v).and_then(|url| {
            if url.value.starts_with("http://") || url.value.starts_with("https://") {
                Some(url)
            } else {
                cx.invalid(
                    v,
                    format!("`{}` is not an http or https URL", url.value),
                    Some("give the full URL a POST goes to, such as https://hooks.example.com/conductor".into()),
                );
                None
            }
        }),
        None => {
            cx.missing(
                key.span,
                "webhook",
                "notify",
                "add the URL each end is POSTed to, such as `webhook = \"https://hooks.example.com/conductor\"`",
            );
            None
        }
    };
    let secret_env = f.get("secret_env").and_then(|(k, v)| {
        let name = cx.string(k, v)?;
        let valid = !name.value.is_empty()
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.value.starts_with(|c: char| c.is_ascii_digit());
        if valid {
            Some(name)
        } else {
            cx.invalid(
                v,
                format!("`{}` is not an environment variable name", name.value),
                Some("name the variable that holds the secret, such as CONDUCTOR_WEBHOOK_SECRET; never the secret itself".into()),
            );
            None
        }
    });
    f.finish(cx);
    Some(Notify {
        webhook: webhook?,
        secret_env,
    })
}

fn decode_limits(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Limits> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Limits", format!("`{}`", key.spelled));
    let limits = Limits {
        budget_usd: f.get("budget_usd").and_then(|(k, v)| cx.money(k, v)),
        max_agents: f.get("max_agents").and_then(|(k, v)| cx.count(k, v)),
    };
    f.finish(cx);
    Some(limits)
}
