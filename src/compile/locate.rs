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
        let name = e.name().or(hint.map(|h| h.0));
        let source = e.template_source().or(hint.map(|h| h.1)).unwrap_or("");
        let code = match e.kind() {
            ErrorKind::SyntaxError => Code::TemplateSyntax,
            ErrorKind::UndefinedError => Code::UndefinedVariable,
            ErrorKind::TemplateNotFound => Code::TemplateNotFound,
            _ => Code::TemplateRender,
        };
        let detail = e.detail().unwrap_or("template error").to_string();
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
        if let Some((_, tag)) = unclosed {
            return Diagnostic::error(code, format!("{what}: `{{% {tag} %}}` is never closed"))
                .label(span, "this block is not closed")
                .help(format!("add `{{% end{tag} %}}` where the block ends"));
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
                let Ok(text) = std::fs::read_to_string(&path) else {
                    return fallback;
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
