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

/// The work one render may do (docs/workflow-format.md, "Size caps"): about
/// one unit per instruction and per 64 bytes of data it makes, so ten
/// million allow some 640 MB of text, far more than any prompt, while loops
/// nested over large ranges end in a second with an error instead of
/// running for hours.
pub(crate) const RENDER_FUEL: u64 = 10_000_000;

/// A strict environment whose loader reads from `library`.
pub(crate) fn environment(library: &Library) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(RENDER_FUEL));
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
    env.add_filter("shell_quote", |v: minijinja::Value| {
        super::shell_quote::shell_quote(&v)
    });
    env.set_loader(library.loader());
    env.set_path_join_callback(|name, _parent| super::reads::looked_up(name));
    env
}

/// What went wrong in a render, in words: a render that used up its fuel
/// names the cap.
pub(crate) fn error_detail(e: &minijinja::Error) -> String {
    if e.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!(
            "rendering ran out of fuel: one render may do about {RENDER_FUEL} steps of work (loops nested over large ranges do more); see docs/workflow-format.md, \"Size caps\""
        );
    }
    e.detail()
        .map_or_else(|| e.kind().to_string(), str::to_string)
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

/// A template named in a source with a literal string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub name: String,
    /// `{% include "x" ignore missing %}`: it may not exist.
    pub optional: bool,
}

/// Template names a source refers to with `include`, `import`, `from` or
/// `extends` and a string literal that is the whole name, so that a static
/// check can follow them. A name computed from a literal and values
/// (`"parts/" ~ item ~ ".md"`) is not one: the plan's renders find it.
pub(crate) fn referenced_templates(source: &str) -> Vec<Reference> {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let Some(re) = RE
        .get_or_init(|| {
            regex::Regex::new(
                r#"\{%[-+]?\s*(?:include|import|from|extends)\s+(?:"([^"]*)"|'([^']*)')\s*(ignore\s+missing\b)?\s*(?:[-+]?%\}|as\b|import\b|with\b|without\b)"#,
            )
            .ok()
        })
        .as_ref()
    else {
        return Vec::new();
    };
    re.captures_iter(source)
        .filter_map(|c| {
            let name = c.get(1).or_else(|| c.get(2))?.as_str().to_string();
            Some(Reference {
                name,
                optional: c.get(3).is_some(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(source: &str) -> Vec<(String, bool)> {
        referenced_templates(source)
            .into_iter()
            .map(|r| (r.name, r.optional))
            .collect()
    }

    #[test]
    fn only_whole_literal_names_are_references() {
        assert_eq!(names(r#"{% include "a.md" %}"#), [("a.md".into(), false)]);
        assert_eq!(names(r"{%- include 'a.md' -%}"), [("a.md".into(), false)]);
        assert_eq!(names(r#"{% include "parts/" ~ item ~ ".md" %}"#), []);
        assert_eq!(names(r"{% include name %}"), []);
        assert_eq!(
            names(r#"{% include "x.md" ignore missing %}"#),
            [("x.md".into(), true)]
        );
        assert_eq!(
            names(r#"{% import "m.md" as m %}{% from "n.md" import f %}{% extends "b.md" %}"#),
            [
                ("m.md".into(), false),
                ("n.md".into(), false),
                ("b.md".into(), false)
            ]
        );
        assert_eq!(
            names(r#"{% include "a.md" with context %}"#),
            [("a.md".into(), false)]
        );
    }
}
