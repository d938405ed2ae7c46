//! Locating template errors: which file a minijinja error is in (an inline
//! prompt inside a workflow file, or a template file from the library), and
//! the exact span there, so that diagnostics underline the user's own text.

use minijinja::ErrorKind;

use super::program::InlineTemplate;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{Span, Syntax};

/// Finds the file and span a template error points at. Shared by the compile
/// checks and the plan-time renders.
#[derive(Debug)]
pub(crate) struct Locator<'a> {
    pub sources: &'a mut crate::source::Sources,
    pub scopes: &'a [super::Scope],
    pub inline: &'a std::collections::HashMap<(usize, String), InlineTemplate>,
}

impl Locator<'_> {
    /// A minijinja error as a diagnostic in the file the error is in.
    pub(crate) fn template_error(
        &mut self,
        scope: usize,
        e: &minijinja::Error,
        fallback: Span,
    ) -> Diagnostic {
        self.template_error_in(scope, e, fallback, None)
    }

    /// As [`Self::template_error`], for errors raised while a template is
    /// added, which carry neither its name nor its source: `hint` gives both.
    pub(crate) fn template_error_in(
        &mut self,
        scope: usize,
        e: &minijinja::Error,
        fallback: Span,
        hint: Option<(&str, &str)>,
    ) -> Diagnostic {
        // An error in an included template is best shown where it is.
        let (e, chain) = innermost(e);
        let name = e.name().or(hint.map(|h| h.0));
        let source = e.template_source().or(hint.map(|h| h.1)).unwrap_or("");
        let code = match e.kind() {
            ErrorKind::SyntaxError => Code::TemplateSyntax,
            ErrorKind::UndefinedError => Code::UndefinedVariable,
            ErrorKind::TemplateNotFound => Code::TemplateNotFound,
            _ => Code::TemplateRender,
        };
        let detail = crate::prompt::error_detail(e);
        let what = match code {
            Code::TemplateSyntax => "template syntax error",
            Code::UndefinedVariable => "undefined variable in template",
            _ => "template error",
        };
        // "Unexpected end of input" is best shown at the block left open.
        let unclosed = (code == Code::TemplateSyntax && detail.contains("end of input"))
            .then(|| unclosed_block(source))
            .flatten();
        let span = name.map_or(fallback, |name| {
            let range = unclosed
                .as_ref()
                .map(|(r, _)| r.clone())
                .or_else(|| e.range())
                .or_else(|| e.line().and_then(|l| line_range(source, l)))
                .map(|r| whole_chars(source, r));
            self.locate(scope, name, range, fallback)
        });
        if detail.contains("recursion limit") {
            return recursion(&chain, span);
        }
        if let Some((_, tag)) = unclosed {
            return Diagnostic::error(code, format!("{what}: `{{% {tag} %}}` is never closed"))
                .label(span, "this block is not closed")
                .help(format!("add `{{% end{tag} %}}` where the block ends"));
        }
        if code == Code::TemplateNotFound {
            let search: Vec<String> = self.scopes[scope]
                .library
                .search_path()
                .iter()
                .map(|d| format!("{}/", crate::source::display_name(d)))
                .collect();
            return Diagnostic::error(code, format!("template not found: {detail}"))
                .label(span, "names a template that does not exist")
                .help(format!(
                    "templates are looked up in: {}; create it there, or correct the name",
                    search.join(", ")
                ));
        }
        let help = match code {
            Code::TemplateSyntax => {
                "templates use minijinja (Jinja2) syntax: `{{ value }}`, `{% if .. %}..{% endif %}`"
            }
            Code::UndefinedVariable => {
                "guard optional values with `{% if x is defined %}`; see docs/workflow-format.md for the template context"
            }
            _ => "see docs/workflow-format.md for templates",
        };
        Diagnostic::error(code, format!("{what}: {detail}"))
            .label(span, detail)
            .help(help)
    }

    /// The span of `range` within the template called `name`.
    pub(crate) fn locate(
        &mut self,
        scope: usize,
        name: &str,
        range: Option<std::ops::Range<usize>>,
        fallback: Span,
    ) -> Span {
        if let Some(inline) = self.inline.get(&(scope, name.to_string())) {
            let Some(range) = range else {
                return inline.span;
            };
            return self.inline_span(inline, range);
        }
        let Some(path) = self.scopes[scope].library.resolve(name) else {
            return fallback;
        };
        let file = match self.sources.find(&path) {
            Some(f) => f,
            None => {
                let text = match crate::source::read_text(&path) {
                    Ok(text) | Err(crate::source::ReadError::NotUtf8 { lossy: text, .. }) => text,
                    Err(crate::source::ReadError::Io(_)) => return fallback,
                };
                self.sources.add(
                    path.clone(),
                    crate::source::display_name(&path),
                    text,
                    Syntax::Text,
                )
            }
        };
        range.map_or(Span::new(file, 0..0), |r| Span::new(file, r))
    }

    /// Maps a range in an inline prompt's text to the workflow file, when the
    /// text appears verbatim there (no escapes); else the whole string.
    fn inline_span(&self, inline: &InlineTemplate, range: std::ops::Range<usize>) -> Span {
        let text_span = inline.span;
        let raw = self.sources.slice(text_span);
        let value = &inline.text;
        let start = raw_offset(raw, value, range.start);
        let end = raw_offset(raw, value, range.end.max(range.start));
        match (start, end) {
            (Some(a), Some(b)) => Span::new(
                text_span.file,
                text_span.offset() + a..text_span.offset() + b.max(a),
            ),
            _ => text_span,
        }
    }
}

/// The error at the bottom of a chain of includes, and the names of the
/// templates the chain went through, outermost first.
fn innermost(e: &minijinja::Error) -> (&minijinja::Error, Vec<String>) {
    let mut chain: Vec<String> = e.name().map(str::to_string).into_iter().collect();
    let mut current = e;
    while let Some(next) =
        std::error::Error::source(current).and_then(|s| s.downcast_ref::<minijinja::Error>())
    {
        current = next;
        if let Some(name) = current.name() {
            chain.push(name.to_string());
        }
    }
    (current, chain)
}

/// Templates that include (or import, or extend) each other without end,
/// or macros that call each other too deep.
fn recursion(chain: &[String], span: Span) -> Diagnostic {
    let cycle = chain.last().and_then(|last| {
        let before = &chain[..chain.len() - 1];
        let at = before.iter().rposition(|n| n == last)?;
        Some(&chain[at..])
    });
    match cycle {
        Some([one, _]) => Diagnostic::error(
            Code::TemplateRender,
            format!("template `{one}` includes itself (recursion without end)"),
        )
        .label(span, "includes itself here")
        .help("a template cannot include, import or extend itself; move the shared part into a template of its own"),
        Some(cycle) => Diagnostic::error(
            Code::TemplateRender,
            format!(
                "templates include each other without end (recursion): {}",
                cycle.join(" -> ")
            ),
        )
        .label(span, "the cycle closes here")
        .help("break the cycle: no template may include, import or extend one that includes it"),
        None => Diagnostic::error(
            Code::TemplateRender,
            "template recursion is too deep: includes, imports or macro calls nest without end",
        )
        .label(span, "too deep here")
        .help("a macro that calls itself needs a condition that ends it"),
    }
}

/// The last block tag (`for`, `if`, ...) in `source` that has no end tag,
/// with its range.
fn unclosed_block(source: &str) -> Option<(std::ops::Range<usize>, String)> {
    const BLOCKS: &[&str] = &[
        "for", "if", "block", "macro", "call", "filter", "with", "raw",
    ];
    let mut open: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut rest = 0;
    while let Some(at) = source.get(rest..)?.find("{%") {
        let start = rest + at;
        // The tag's text, up to its `%}` or, when it has none, to the end.
        let (inner_end, end) = source[start + 2..]
            .find("%}")
            .map_or((source.len(), source.len()), |e| {
                (start + 2 + e, start + 2 + e + 2)
            });
        let inner = source[start + 2..inner_end].trim_matches(['-', '+', ' ', '\n', '\t']);
        let word = inner.split_whitespace().next().unwrap_or("");
        if BLOCKS.contains(&word) {
            open.push((start..end, word.to_string()));
        } else if let Some(closed) = word.strip_prefix("end")
            && let Some(i) = open.iter().rposition(|(_, w)| w == closed)
        {
            open.truncate(i);
        }
        rest = end;
    }
    open.pop()
}

/// Where byte `offset` of a string's value lies in its source text. Lines are
/// found one after the other, so a KDL multi-line string (whose indentation
/// is stripped) and a TOML one (whose first newline is dropped) both map; a
/// line with escapes does not, and then there is no answer.
fn raw_offset(raw: &str, value: &str, offset: usize) -> Option<usize> {
    let mut cursor = 0;
    let mut line_start = 0;
    for line in value.split_inclusive('\n') {
        let text = line.trim_end_matches('\n');
        let found = if text.is_empty() {
            cursor
        } else {
            cursor + raw.get(cursor..)?.find(text)?
        };
        if offset <= line_start + text.len() {
            return Some(found + (offset - line_start));
        }
        cursor = found + text.len();
        line_start += line.len();
    }
    (offset == value.len()).then_some(cursor)
}

/// `range` within `source` and widened to whole characters: minijinja
/// points at the first byte of a character it does not expect.
fn whole_chars(source: &str, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let end = source.ceil_char_boundary(range.end.min(source.len()));
    source.floor_char_boundary(range.start.min(end))..end
}

fn line_range(source: &str, line: usize) -> Option<std::ops::Range<usize>> {
    let start: usize = source
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let len = source.get(start..)?.lines().next().map_or(0, str::len);
    Some(start..start + len)
}
