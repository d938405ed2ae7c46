//! Template checks at compile time: registering prompts, following
//! `include`/`import`/`extends` to missing files, the static check of the
//! variables a template reads against the context it will get, gate and stop
//! expressions, and turning minijinja errors into diagnostics that point into
//! the right file.

use std::collections::HashSet;

use minijinja::ErrorKind;

use super::builder::Builder;
use super::locate::Locator;
use super::program::InlineTemplate;
use crate::diagnostic::{Code, Diagnostic, suggestion_help};
use crate::model::{Prompt, Spanned};
use crate::prompt::{self, PROMPT_GLOBALS, STRING_GLOBALS};
use crate::source::{Span, Syntax};

/// Names minijinja itself provides.
const BUILTINS: &[&str] = &[
    "range",
    "dict",
    "namespace",
    "debug",
    "loop",
    "self",
    "super",
    "caller",
    "varargs",
    "kwargs",
    "true",
    "false",
    "none",
];

/// What a template may read.
#[derive(Debug)]
pub(crate) struct Allowed<'a> {
    pub globals: Vec<&'a str>,
    pub params: Vec<&'a str>,
    pub vars: Vec<&'a str>,
    pub needs: Vec<&'a str>,
}

impl Builder {
    /// Registers the node's prompt in its scope's environment and returns the
    /// template name; reports syntax errors and missing files.
    pub(super) fn register_prompt(
        &mut self,
        scope: usize,
        node: &str,
        prompt: &Prompt,
    ) -> Option<String> {
        match prompt {
            Prompt::Inline(text) => {
                let name = format!("<{node} prompt>");
                self.inline.insert(
                    (scope, name.clone()),
                    InlineTemplate {
                        span: text.span,
                        text: text.value.clone(),
                    },
                );
                let result = self.scopes[scope]
                    .templates
                    .add_template_owned(name.clone(), text.value.clone());
                if let Err(e) = result {
                    let d = self.locator().template_error_in(
                        scope,
                        &e,
                        text.span,
                        Some((&name, &text.value)),
                    );
                    self.diags.push(d);
                    return None;
                }
                Some(name)
            }
            Prompt::Template { template, .. } => {
                if self.scopes[scope]
                    .library
                    .resolve(&template.value)
                    .is_none()
                {
                    self.diags
                        .push(self.not_found(scope, &template.value, template.span));
                    return None;
                }
                let result = self.scopes[scope]
                    .templates
                    .get_template(&template.value)
                    .map(|_| ());
                if let Err(e) = result {
                    let d = self.template_error(scope, &e, template.span);
                    self.diags.push(d);
                    return None;
                }
                Some(template.value.clone())
            }
        }
    }

    fn not_found(&self, scope: usize, name: &str, at: Span) -> Diagnostic {
        let search: Vec<String> = self.scopes[scope]
            .library
            .search_path()
            .iter()
            .map(|d| format!("{}/", crate::source::display_name(d)))
            .collect();
        Diagnostic::error(
            Code::TemplateNotFound,
            format!("template `{name}` not found"),
        )
        .label(at, "no such template")
        .help(format!(
            "templates are looked up in: {}; add the folder holding it to {}",
            search.join(", "),
            if self.syntax(scope) == Syntax::Kdl {
                "`prompts library=\"..\"`"
            } else {
                "`[prompts] library`"
            }
        ))
    }

    /// Checks the variables of the prompt template and of every template it
    /// pulls in, and that those templates exist.
    pub(super) fn check_prompt_variables(
        &mut self,
        scope: usize,
        template: &str,
        vars: &serde_json::Map<String, serde_json::Value>,
        needs: &[String],
        has_item: bool,
        has_matrix: bool,
    ) {
        let params: Vec<String> = self.scopes[scope].params.keys().cloned().collect();
        let mut globals: Vec<&str> = PROMPT_GLOBALS.to_vec();
        if has_item {
            globals.push("item");
        }
        if has_matrix {
            globals.push("matrix");
        }
        let allowed = Allowed {
            globals,
            params: params.iter().map(String::as_str).collect(),
            vars: vars.keys().map(String::as_str).collect(),
            needs: needs.iter().map(String::as_str).collect(),
        };
        let secrets = self.secret_names();
        let mut seen = HashSet::new();
        let mut queue = vec![(template.to_string(), None::<Span>, false)];
        while let Some((name, named_at, optional)) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let loaded = self.scopes[scope]
                .templates
                .get_template(&name)
                .map(|t| (prompt::undeclared(&t), t.source().to_string()));
            let (names, source) = match loaded {
                Ok(found) => found,
                Err(e) if optional && e.kind() == ErrorKind::TemplateNotFound => continue,
                Err(e) => {
                    let d = if e.kind() == ErrorKind::TemplateNotFound {
                        self.not_found(
                            scope,
                            &name,
                            named_at.unwrap_or_else(|| self.fallback_span(scope)),
                        )
                    } else {
                        self.template_error(
                            scope,
                            &e,
                            named_at.unwrap_or_else(|| self.fallback_span(scope)),
                        )
                    };
                    self.diags.push(d);
                    continue;
                }
            };
            for var in names {
                if let Some((message, help)) = secret_read(&var, &secrets) {
                    let span = self.span_in_template(scope, &name, &source, &var);
                    self.diags.push(
                        Diagnostic::error(Code::SecretInTemplate, message)
                            .label(span, "reads a secret")
                            .help(help),
                    );
                    continue;
                }
                if is_guarded(&source, &var) {
                    continue;
                }
                if let Some((message, help)) = undefined(&var, &allowed) {
                    let span = self.span_in_template(scope, &name, &source, &var);
                    self.diags.push(
                        Diagnostic::error(Code::UndefinedVariable, message)
                            .label(span, "undefined")
                            .maybe_help(help),
                    );
                }
            }
            for referenced in prompt::referenced_templates(&source) {
                let at = self.span_in_template(scope, &name, &source, &referenced.name);
                queue.push((referenced.name, Some(at), referenced.optional));
            }
        }
    }

    /// A gate is an expression over `needs`, params and env.
    pub(super) fn check_gate(&mut self, scope: usize, gate: &Spanned<String>, needs: &[String]) {
        let params: Vec<String> = self.scopes[scope].params.keys().cloned().collect();
        let allowed = Allowed {
            globals: STRING_GLOBALS.iter().copied().chain(["needs"]).collect(),
            params: params.iter().map(String::as_str).collect(),
            vars: Vec::new(),
            needs: needs.iter().map(String::as_str).collect(),
        };
        self.check_expression(scope, gate, Some(&allowed));
    }

    /// Syntax of an expression, and its variables when `allowed` is given.
    pub(super) fn check_expression(
        &mut self,
        scope: usize,
        expr: &Spanned<String>,
        allowed: Option<&Allowed<'_>>,
    ) {
        let compiled = self.scopes[scope]
            .templates
            .compile_expression_owned(expr.value.clone())
            .map(|e| {
                let mut v: Vec<String> = e.undeclared_variables(true).into_iter().collect();
                v.sort();
                v
            });
        match compiled {
            Err(e) => {
                let detail = e.detail().unwrap_or("invalid expression").to_string();
                self.diags.push(
                    Diagnostic::error(Code::BadExpression, format!("invalid expression: {detail}"))
                        .label(expr.span, "in this expression")
                        .help("write a minijinja expression, such as `needs.review.status == \"done\"`"),
                );
            }
            Ok(names) => {
                let secrets = self.secret_names();
                if let Some((message, help)) = names.iter().find_map(|v| secret_read(v, &secrets)) {
                    self.diags.push(
                        Diagnostic::error(Code::SecretInTemplate, message)
                            .label(expr.span, "in this expression")
                            .help(help),
                    );
                    return;
                }
                let Some(allowed) = allowed else { return };
                for var in names {
                    if let Some((message, help)) = undefined(&var, allowed) {
                        self.diags.push(
                            Diagnostic::error(Code::UndefinedVariable, message)
                                .label(expr.span, "in this expression")
                                .maybe_help(help),
                        );
                    }
                }
            }
        }
    }

    /// Warns of a value pasted into shell command `text` without
    /// `shell_quote`: an item like `$(touch X)` would run (docs/security.md,
    /// "Values are data, never code"). `has_item`: the command runs with
    /// `$CONDUCTOR_ITEM` in its environment.
    pub(super) fn check_shell_values(&mut self, text: &Spanned<String>, has_item: bool) {
        let Some(bare) = unquoted_interpolation(&text.value) else {
            return;
        };
        let quoted = format!("{{{{ {} | shell_quote }}}}", bare.trim());
        let help = if has_item && bare.trim() == "item" {
            format!(
                "write `{quoted}`, or `\"$CONDUCTOR_ITEM\"` (the item, in the command's environment)"
            )
        } else {
            format!(
                "write `{quoted}`: the shell then reads the value as one word, whatever it holds"
            )
        };
        self.diags.push(
            Diagnostic::warning(
                Code::UnquotedInShell,
                format!(
                    "`{{{{ {} }}}}` is pasted into a shell command as it is: a value such as `$(touch X)` would run",
                    bare.trim()
                ),
            )
            .label(text.span, "in this command")
            .help(format!("{help} (docs/security.md, \"Values are data, never code\")")),
        );
    }

    /// A run-time fan-out's `key` template parses and reads no secret.
    pub(super) fn check_key_template(&mut self, scope: usize, key: &Spanned<String>) {
        if let Err(e) = self.scopes[scope].templates.template_from_str(&key.value) {
            let detail = e.detail().unwrap_or("invalid template").to_string();
            self.diags.push(
                Diagnostic::error(
                    Code::TemplateSyntax,
                    format!("invalid `key` template: {detail}"),
                )
                .label(key.span, "in this template")
                .help("write a template over `item`, such as \"{{ item.title }}\""),
            );
            return;
        }
        self.check_no_secret(scope, key);
    }

    /// A templated string that reads a secret through `env` is an error
    /// (docs/security.md, "Secrets").
    pub(super) fn check_no_secret(&mut self, scope: usize, text: &Spanned<String>) {
        if !prompt::is_templated(&text.value) {
            return;
        }
        let reads = self.scopes[scope]
            .templates
            .template_from_str(&text.value)
            .map(|t| prompt::undeclared(&t))
            .unwrap_or_default();
        let secrets = self.secret_names();
        if let Some((message, help)) = reads.iter().find_map(|v| secret_read(v, &secrets)) {
            self.diags.push(
                Diagnostic::error(Code::SecretInTemplate, message)
                    .label(text.span, "reads a secret")
                    .help(help),
            );
        }
    }

    /// Renders a templated string of a node (not a prompt) over the string
    /// context; reports errors at `span`.
    pub(super) fn render_string(
        &mut self,
        scope: usize,
        node: &str,
        text: &str,
        span: Span,
        item: Option<&serde_json::Value>,
    ) -> Option<String> {
        let secrets = self.secret_names();
        let reads = self.scopes[scope]
            .templates
            .template_from_str(text)
            .map(|t| prompt::undeclared(&t))
            .unwrap_or_default();
        if let Some((message, help)) = reads.iter().find_map(|v| secret_read(v, &secrets)) {
            self.diags.push(
                Diagnostic::error(Code::SecretInTemplate, message)
                    .label(span, "in this value")
                    .help(help),
            );
            return None;
        }
        let ctx = string_context(&self.scopes[scope], node, item, &secrets);
        match self.scopes[scope].templates.render_str(text, ctx) {
            Ok(s) => Some(s),
            Err(e) => {
                let detail = e.detail().unwrap_or("cannot render").to_string();
                let code = if e.kind() == ErrorKind::UndefinedError {
                    Code::UndefinedVariable
                } else {
                    Code::TemplateRender
                };
                self.diags.push(
                    Diagnostic::error(code, format!("cannot render `{text}`: {detail}"))
                        .label(span, "in this value")
                        .help(format!(
                            "strings may use {}",
                            STRING_GLOBALS
                                .iter()
                                .map(|g| format!("`{g}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                );
                None
            }
        }
    }

    pub(crate) fn template_error(
        &mut self,
        scope: usize,
        e: &minijinja::Error,
        fallback: Span,
    ) -> Diagnostic {
        self.locator().template_error(scope, e, fallback)
    }

    fn locator(&mut self) -> Locator<'_> {
        Locator {
            sources: &mut self.sources,
            scopes: &self.scopes,
            inline: &self.inline,
        }
    }

    fn locate(
        &mut self,
        scope: usize,
        name: &str,
        range: Option<std::ops::Range<usize>>,
        fallback: Span,
    ) -> Span {
        self.locator().locate(scope, name, range, fallback)
    }

    /// Where `needle` (a variable or template name) first appears in a template.
    fn span_in_template(&mut self, scope: usize, name: &str, source: &str, needle: &str) -> Span {
        let fallback = self.fallback_span(scope);
        let range = find_reference(source, needle);
        self.locate(scope, name, range, fallback)
    }

    fn fallback_span(&self, scope: usize) -> Span {
        Span::new(self.scopes[scope].file, 0..0)
    }
}

/// The context of templated strings other than prompts; `env` is
/// conductor's without the secrets (docs/security.md).
pub(crate) fn string_context(
    scope: &super::Scope,
    node: &str,
    item: Option<&serde_json::Value>,
    secrets: &[String],
) -> minijinja::Value {
    let mut ctx = std::collections::BTreeMap::new();
    ctx.insert(
        "params",
        prompt::context(&serde_json::Value::Object(scope.params.clone())),
    );
    ctx.insert(
        "vars",
        prompt::context(&serde_json::Value::Object(serde_json::Map::new())),
    );
    ctx.insert("env", prompt::env_value(std::env::vars(), secrets));
    ctx.insert("node", minijinja::Value::from(node));
    ctx.insert("workflow", minijinja::Value::from(scope.workflow.as_str()));
    if let Some(item) = item {
        ctx.insert("item", prompt::context(item));
    }
    minijinja::Value::from(ctx)
}

/// The first `{{ ... }}` of `text` whose value is not passed through
/// `shell_quote` last: its expression.
fn unquoted_interpolation(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        let inner =
            after[..close].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let quoted = inner
            .rsplit_once('|')
            .is_some_and(|(_, last)| last.trim() == "shell_quote");
        if !quoted {
            return Some(inner);
        }
        rest = &after[close + 2..];
    }
    None
}

/// When `var` (a dotted path) reads a secret through `env`: what is wrong
/// and how to give an agent its key instead.
fn secret_read(var: &str, secrets: &[String]) -> Option<(String, String)> {
    let name = var.strip_prefix("env.")?.split('.').next()?;
    secrets.iter().any(|s| s == name).then(|| {
        (
            format!("`env.{name}` holds an API key, which templates cannot read"),
            format!(
                "conductor gives {name} only to the agent that uses it, in that agent's environment: \
                 an agent whose kind reads it, or one with `api_key_env = \"{name}\"`; \
                 it never goes into a prompt, a command or a file (docs/security.md, \"Secrets\")"
            ),
        )
    })
}

/// Why a variable is not available, with a suggestion; `None` when it is.
fn undefined(var: &str, allowed: &Allowed<'_>) -> Option<(String, Option<String>)> {
    let mut parts = var.splitn(3, '.');
    let top = parts.next().unwrap_or_default();
    let second = parts.next();
    if BUILTINS.contains(&top) {
        return None;
    }
    if !allowed.globals.contains(&top) {
        let help = suggestion_help(top, allowed.globals.iter().copied(), "a prompt can use");
        let help = match top {
            "item" => Some("`item` exists only in nodes with `for_each`".to_string()),
            "matrix" => Some("`matrix` exists only in nodes with a `matrix`".to_string()),
            _ => help,
        };
        return Some((format!("undefined variable `{top}`"), help));
    }
    let (list, what): (&[&str], &str) = match top {
        "params" => (&allowed.params, "param"),
        "vars" => (&allowed.vars, "var"),
        "needs" => (&allowed.needs, "need"),
        _ => return None,
    };
    let key = second?;
    if list.contains(&key) {
        return None;
    }
    let help = suggestion_help(key, list.iter().copied(), &format!("the {what}s are"))
        .or_else(|| Some(format!("there are no {what}s here")));
    let message = if top == "needs" {
        format!("`needs.{key}` is not a need of this node")
    } else {
        format!("undefined {what} `{key}`")
    };
    let help = if top == "needs" {
        help.map(|h| format!("{h}; add `{key}` to the node's `needs` to use its result"))
    } else {
        help
    };
    Some((message, help))
}

/// Whether the template tests the variable with `is defined` / `is
/// undefined` somewhere: then it is optional by design and rendering, not the
/// static check, judges it.
fn is_guarded(source: &str, var: &str) -> bool {
    let top = var.split('.').next().unwrap_or(var);
    [var, top].iter().any(|name| {
        let mut rest = source;
        while let Some(at) = rest.find(name) {
            let before_ok = rest[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != '.');
            let after = rest[at + name.len()..].trim_start();
            if before_ok
                && (after.starts_with("is defined")
                    || after.starts_with("is undefined")
                    || after.starts_with("is not defined"))
            {
                return true;
            }
            rest = &rest[at + name.len()..];
        }
        false
    })
}

/// The first place `needle` (a dotted path like `params.repo`) is written.
fn find_reference(source: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    if let Some(at) = source.find(needle) {
        return Some(at..at + needle.len());
    }
    let mut parts = needle.split('.');
    let top = parts.next()?;
    let last = parts.next_back();
    let at = last
        .and_then(|l| source.find(l))
        .or_else(|| source.find(top))?;
    let len = last.map_or(top.len(), str::len);
    Some(at..at + len)
}
