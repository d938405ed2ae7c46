//! Owns the strict minijinja environment every prompt is rendered in (an
//! undefined variable is an error, nothing is escaped, trailing newlines
//! are kept), the names templates may use, and reading what a template
//! reads and includes, for the static checks.

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};

use super::library::Library;

/// Names every prompt may use, whether or not the node is fanned out.
pub(crate) const PROMPT_GLOBALS: &[&str] = &[
    "params",
    "vars",
    "env",
    "node",
    "workflow",
    "iteration",
    "previous",
    "needs",
];

/// Names the other templated strings (agent, workdir, inputs...) may use.
pub(crate) const STRING_GLOBALS: &[&str] = &["params", "vars", "env", "node", "workflow"];

/// A strict environment whose loader reads from `library`.
pub(crate) fn environment(library: &Library) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Prompts are Markdown, not HTML.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_auto_reload(false);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_loader(library.loader());
    env
}

/// Whether a string is a template rather than plain text.
pub(crate) fn is_templated(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// Converts a JSON context into a template value.
pub(crate) fn context(json: &serde_json::Value) -> minijinja::Value {
    minijinja::Value::from(Serde(json))
}

/// The variables a template reads that it does not set itself, as dotted
/// paths (`params.repo`, `item`), sorted. `needs["x"]` is reported as
/// `needs.x`. Includes and parents are not followed here (see [`Library`]).
pub(crate) fn undeclared(template: &minijinja::Template<'_, '_>) -> Vec<String> {
    let mut names: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    names.sort();
    names
}

/// Template names a source refers to with `include`, `import`, `from` or
/// `extends` and a literal string, so that a static check can follow them.
pub(crate) fn referenced_templates(source: &str) -> Vec<String> {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let Some(re) = RE
        .get_or_init(|| {
            regex::Regex::new(r#"\{%-?\s*(?:include|import|from|extends)\s+["']([^"']+)["']"#).ok()
        })
        .as_ref()
    else {
        return Vec::new();
    };
    re.captures_iter(source)
        .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
        .collect()
}
