//! Resolves a workflow's params: declared defaults, overridden by `--set` on
//! the command line (entry file) or by `with` (sub-workflows), each checked
//! against the param's type and `enum`.

use std::path::Path;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, suggestion_help};
use crate::model::{Param, ParamType, json_type_name};
use crate::paths::rebase;
use crate::source::Span;

/// One value given for a param from outside the file.
#[derive(Debug, Clone)]
pub(super) struct Given {
    pub name: String,
    pub name_span: Span,
    pub value: serde_json::Value,
    pub value_span: Span,
    /// Folder a relative path value is relative to.
    pub base_dir: std::path::PathBuf,
    /// How the value was given, for messages: "--set" or "with".
    pub via: &'static str,
}

/// Splits `--set` arguments (`name=value`) that were laid out in the virtual
/// "command line" file. A value is read as a TOML value when it is one
/// (`3`, `true`, `["a"]`, `"quoted"`), else taken as a plain string.
pub(super) fn parse_sets(
    sets: &[String],
    file: crate::source::FileId,
    cwd: &Path,
    diags: &mut Diagnostics,
) -> Vec<Given> {
    let mut out = Vec::new();
    let mut offset = 0;
    for arg in sets {
        let start = offset + "--set ".len();
        offset = start + arg.len() + 1;
        let whole = Span::new(file, start..start + arg.len());
        let Some((name, raw)) = arg.split_once('=') else {
            diags.push(
                Diagnostic::error(Code::BadSet, format!("`--set {arg}` has no `=`"))
                    .label(whole, "expected NAME=VALUE")
                    .help("write `--set name=value`, such as `--set repo=../x`"),
            );
            continue;
        };
        let name_span = Span::new(file, start..start + name.len());
        let value_span = Span::new(file, start + name.len() + 1..start + arg.len());
        if name.trim().is_empty() {
            diags.push(
                Diagnostic::error(Code::BadSet, format!("`--set {arg}` names no param"))
                    .label(whole, "expected NAME=VALUE"),
            );
            continue;
        }
        out.push(Given {
            name: name.trim().to_string(),
            name_span,
            value: toml_or_string(raw),
            value_span,
            base_dir: cwd.to_path_buf(),
            via: "`--set`",
        });
    }
    out
}

fn toml_or_string(raw: &str) -> serde_json::Value {
    let doc = format!("v = {raw}");
    toml::from_str::<toml::Table>(&doc)
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_else(|| serde_json::Value::from(raw))
}

/// The final params of one scope. `dir` is the scope file's folder: path
/// values end up relative to it.
pub(super) fn resolve(
    params: &[Param],
    given: &[Given],
    dir: &Path,
    missing_at: Span,
    diags: &mut Diagnostics,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for g in given {
        if !params.iter().any(|p| p.name.value == g.name) {
            let names = params.iter().map(|p| p.name.value.as_str());
            let help = suggestion_help(&g.name, names, "this workflow's params are")
                .or_else(|| Some("this workflow declares no params".to_string()));
            diags.push(
                Diagnostic::error(
                    Code::UnknownParam,
                    format!("`{}` is not a param of this workflow", g.name),
                )
                .label(g.name_span, "unknown param")
                .maybe_help(help),
            );
        }
    }
    for p in params {
        let name = &p.name.value;
        let value = if let Some(g) = given.iter().rev().find(|g| &g.name == name) {
            // A rejected value is reported; the param still exists, so the
            // templates that read it are not reported a second time.
            let v =
                check(p, &g.value, g.value_span, g.via, diags).unwrap_or_else(|| g.value.clone());
            match (p.ty.value, v.as_str()) {
                (ParamType::Path, Some(s)) => serde_json::Value::from(rebase(s, &g.base_dir, dir)),
                _ => v,
            }
        } else if let Some(d) = &p.default {
            d.value.clone()
        } else {
            diags.push(
                Diagnostic::error(
                    Code::ParamType,
                    format!("param `{name}` has no default and no value was given"),
                )
                .label(p.name.span, "required param")
                .label(missing_at, "no value given here")
                .help(format!(
                    "give it a value with `--set {name}=...` (or `with` for a sub-workflow), or add a `default`"
                )),
            );
            continue;
        };
        out.insert(name.clone(), value);
    }
    out
}

/// Type and enum check of a given value. Strings given for `int`, `bool` or
/// `list` params are not coerced: `--set n=3` already reads `3` as an integer.
fn check(
    p: &Param,
    value: &serde_json::Value,
    span: Span,
    via: &str,
    diags: &mut Diagnostics,
) -> Option<serde_json::Value> {
    let ty = p.ty.value;
    // Digits that do not fit in 64 bits reach here as text: say so, rather
    // than that a string was given.
    let out_of_range = value.as_str().is_some_and(|s| {
        let d = s.strip_prefix('-').unwrap_or(s);
        !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && s.parse::<i64>().is_err()
    });
    if ty == crate::model::ParamType::Int && out_of_range {
        diags.push(
            Diagnostic::error(
                Code::ParamType,
                format!(
                    "{} does not fit in param `{}`: an int goes from {} to {}",
                    value.as_str().unwrap_or_default(),
                    p.name.value,
                    i64::MIN,
                    i64::MAX
                ),
            )
            .label(span, "out of range")
            .label(p.ty.span, "the type is declared here"),
        );
        return None;
    }
    if !ty.accepts(value) {
        diags.push(
            Diagnostic::error(
                Code::ParamType,
                format!(
                    "param `{}` is of type {} but {via} gave {}",
                    p.name.value,
                    ty.as_str(),
                    json_type_name(value)
                ),
            )
            .label(span, format!("expected {}", ty.as_str()))
            .label(p.ty.span, "the type is declared here")
            .help(format!(
                "write {} such as {}",
                ty.with_article(),
                ty.example()
            )),
        );
        return None;
    }
    if let Some(choices) = &p.choices
        && !choices.iter().any(|c| &c.value == value)
    {
        let allowed: Vec<String> = choices.iter().map(|c| c.value.to_string()).collect();
        let given = value
            .as_str()
            .map_or_else(|| value.to_string(), ToString::to_string);
        let help = suggestion_help(
            &given,
            choices.iter().filter_map(|c| c.value.as_str()),
            "choose one of",
        )
        .unwrap_or_else(|| format!("choose one of {}", allowed.join(", ")));
        diags.push(
            Diagnostic::error(
                Code::ParamType,
                format!(
                    "{value} is not an allowed value of param `{}`",
                    p.name.value
                ),
            )
            .label(span, "not in the enum")
            .label(p.name.span, "param declared here")
            .help(help),
        );
        return None;
    }
    Some(value.clone())
}
