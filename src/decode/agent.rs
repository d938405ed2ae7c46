//! Reads an `[agents.NAME]` table.

use super::read::{Cx, Fields};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Agent, AgentKind, Price, Spanned};
use crate::syntax::{Key, Value};

pub(crate) fn decode_agent(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Agent> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Agent", format!("agent `{}`", key.name));
    let kind = match f.get("kind") {
        Some((k, v)) => cx.choice(k, v, &AgentKind::ALL),
        None => {
            cx.missing(
                key.span,
                "kind",
                &format!("agent `{}`", key.name),
                "add `kind`: one of command, claude, codex, gemini, openai, anthropic",
            );
            None
        }
    };
    let model = f.get("model").and_then(|(k, v)| cx.string(k, v));
    let command = f.get("command").and_then(|(k, v)| cx.string_list(k, v));
    let args = f.get("args").and_then(|(k, v)| cx.string_list(k, v));
    let extra_args = f.get("extra_args").and_then(|(k, v)| cx.string_list(k, v));
    let env = f
        .get("env")
        .map(|(k, v)| cx.env_map(k, v))
        .unwrap_or_default();
    let base_url = f.get("base_url").and_then(|(k, v)| cx.string(k, v));
    let api_key_env = f
        .get("api_key_env")
        .and_then(|(k, v)| cx.string(k, v))
        .filter(|name| cx.env_name(&name.value, name.span));
    let price = f.get("price").and_then(|(k, v)| decode_price(cx, k, v));
    f.finish(cx);
    // A bad or missing kind is already reported; the agent still counts as
    // declared so that nodes naming it get no second, misleading error.
    let kind = kind.unwrap_or_else(|| Spanned::new(AgentKind::Command, key.span));
    if table
        .get("kind")
        .and_then(|k| k.as_str())
        .and_then(AgentKind::parse)
        .is_some()
    {
        check_kind_keys(cx, key, &kind, command.as_ref(), base_url.as_ref());
        check_http_keys(
            cx,
            &kind,
            [("args", args.as_ref()), ("extra_args", extra_args.as_ref())],
        );
    }
    Some(Agent {
        kind,
        model,
        command,
        args,
        extra_args,
        env,
        base_url,
        api_key_env,
        price,
    })
}

fn check_kind_keys(
    cx: &mut Cx<'_>,
    key: &Key,
    kind: &Spanned<AgentKind>,
    command: Option<&Vec<Spanned<String>>>,
    base_url: Option<&Spanned<String>>,
) {
    match (kind.value, command) {
        (AgentKind::Command, None) => cx.diags.push(
            Diagnostic::error(
                Code::MissingKey,
                format!("agent `{}` has kind \"command\" but no `command`", key.name),
            )
            .label(kind.span, "needs a `command`")
            .help(format!(
                "add the program and its arguments, such as `{}`",
                cx.example("command = [\"cat\"]", "command \"cat\"")
            )),
        ),
        (AgentKind::Command, Some(argv)) if argv.is_empty() => cx.diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                format!("agent `{}` has an empty `command`", key.name),
            )
            .label(kind.span, "this agent")
            .help("name the program to run, such as `command = [\"cat\"]`"),
        ),
        // A CLI kind may name its program (`["npx", "claude"]`, a path);
        // an HTTP kind runs no program.
        (k, Some(argv)) if !k.is_process() => {
            if let Some(first) = argv.first() {
                cx.diags.push(
                    Diagnostic::error(
                        Code::ConflictingKeys,
                        format!(
                            "`command` is only for process agents, not \"{}\"",
                            k.as_str()
                        ),
                    )
                    .label(first.span, "not used by this kind")
                    .help("HTTP agents are reached at `base_url`"),
                );
            }
        }
        _ => {}
    }
    if let Some(url) = base_url
        && kind.value.is_process()
    {
        cx.diags.push(
            Diagnostic::error(
                Code::ConflictingKeys,
                format!(
                    "`base_url` is only for HTTP agents, not \"{}\"",
                    kind.value.as_str()
                ),
            )
            .label(url.span, "not used by this kind")
            .help("HTTP agents have kind \"openai\" or \"anthropic\""),
        );
    }
}

/// HTTP agents run no program, so arguments for one would be silently lost.
fn check_http_keys(
    cx: &mut Cx<'_>,
    kind: &Spanned<AgentKind>,
    lists: [(&str, Option<&Vec<Spanned<String>>>); 2],
) {
    if kind.value.is_process() {
        return;
    }
    for (name, list) in lists {
        if let Some(first) = list.and_then(|l| l.first()) {
            cx.diags.push(
                Diagnostic::error(
                    Code::ConflictingKeys,
                    format!(
                        "`{name}` is only for process agents, not \"{}\"",
                        kind.value.as_str()
                    ),
                )
                .label(first.span, "not used by this kind")
                .help(
                    "HTTP agents run no program: they take `model`, `base_url` and `api_key_env`",
                ),
            );
        }
    }
}

fn decode_price(cx: &mut Cx<'_>, key: &Key, value: &Value) -> Option<Price> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Price", format!("`{}`", key.spelled));
    let price = Price {
        input_per_mtok: f.get("input_per_mtok").and_then(|(k, v)| cx.money(k, v)),
        output_per_mtok: f.get("output_per_mtok").and_then(|(k, v)| cx.money(k, v)),
    };
    f.finish(cx);
    Some(price)
}
