//! Lowers TOML text into the spanned tree. TOML keys are already in canonical
//! form, so this is a plain walk; syntax errors are collected (the parser
//! recovers) rather than stopping at the first.

use toml::de::{DeTable, DeValue};

use super::tree::{Key, Table, Value, ValueKind};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{FileId, Span};

/// Parses `text`; on syntax errors returns them all and no tree.
pub(super) fn parse(file: FileId, text: &str) -> Result<Table, Vec<Diagnostic>> {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(syntax_errors(file, text, &errors));
    }
    let span = Span::new(file, 0..text.len());
    Ok(table(file, root.get_ref(), span))
}

/// The parser's errors as diagnostics. A table written twice (`[nodes.x]`)
/// is one problem, not one per key inside it: it is reported once, naming
/// both places, and the knock-on "duplicate key" errors in its body dropped.
fn syntax_errors(file: FileId, text: &str, errors: &[toml::de::Error]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut swallow: Option<std::ops::Range<usize>> = None;
    for e in errors {
        let range = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        if swallow.as_ref().is_some_and(|b| b.contains(&range.start)) && message == "duplicate key"
        {
            continue;
        }
        if message == "duplicate key"
            && let Some(d) = duplicate_table(file, text, &range)
        {
            swallow = Some(table_body(text, range.start));
            out.push(d);
            continue;
        }
        out.push(
            Diagnostic::error(Code::TomlSyntax, format!("invalid TOML: {message}"))
                .label(Span::new(file, range), "here")
                .help("fix the TOML syntax; see https://toml.io/en/v1.0.0"),
        );
    }
    out
}

/// When `range` is in a `[table]` header that appeared before, the
/// diagnostic saying so.
fn duplicate_table(file: FileId, text: &str, range: &std::ops::Range<usize>) -> Option<Diagnostic> {
    let line_start = text.get(..range.start)?.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text
        .get(range.start..)?
        .find('\n')
        .map_or(text.len(), |i| range.start + i);
    let header = text.get(line_start..line_end)?.trim();
    if !header.starts_with('[') || header.starts_with("[[") {
        return None;
    }
    let first = text.get(..line_start)?.lines().scan(0usize, |pos, line| {
        let at = *pos;
        *pos += line.len() + 1;
        Some((at, line))
    });
    let (first_at, first_line) = first.filter(|(_, l)| l.trim() == header).last()?;
    let first_at = first_at + first_line.find('[').unwrap_or(0);
    let second_at = line_start + text.get(line_start..line_end)?.find('[').unwrap_or(0);
    let name = header.trim_start_matches('[').trim_end_matches(']').trim();
    let (code, message) = match name.strip_prefix("nodes.") {
        Some(id) => (
            Code::DuplicateNode,
            format!("node `{}` is defined twice", id.trim_matches('"')),
        ),
        None => (
            Code::DuplicateKey,
            format!("table `[{name}]` is defined twice"),
        ),
    };
    Some(
        Diagnostic::error(code, message)
            .label(
                Span::new(file, first_at..first_at + header.len()),
                "first defined here",
            )
            .label(
                Span::new(file, second_at..second_at + header.len()),
                "defined again here",
            )
            .help("give one of them another name, or merge them into one table"),
    )
}

/// From a header to the next header (or the end of the file).
fn table_body(text: &str, start: usize) -> std::ops::Range<usize> {
    let after_header = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let end = text[after_header..]
        .match_indices('\n')
        .map(|(i, _)| after_header + i + 1)
        .find(|&i| text[i..].trim_start().starts_with('['))
        .unwrap_or(text.len());
    start..end
}

fn table(file: FileId, t: &DeTable<'_>, span: Span) -> Table {
    let mut out = Table::new(span);
    for (k, v) in t {
        let key = Key {
            name: k.get_ref().to_string(),
            spelled: k.get_ref().to_string(),
            span: Span::new(file, k.span()),
        };
        out.entries
            .push((key, value(file, v.get_ref(), Span::new(file, v.span()))));
    }
    out
}

fn value(file: FileId, v: &DeValue<'_>, span: Span) -> Value {
    let kind = match v {
        DeValue::String(s) => ValueKind::String(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => ValueKind::Integer(n),
            // Out of i64 range: keep the text; a typed read will report it.
            Err(_) => ValueKind::HugeInteger(i.to_string()),
        },
        DeValue::Float(f) => ValueKind::Float(float(f.as_str())),
        DeValue::Boolean(b) => ValueKind::Bool(*b),
        DeValue::Datetime(d) => ValueKind::Datetime(d.to_string()),
        DeValue::Array(items) => ValueKind::Array(
            items
                .iter()
                .map(|item| value(file, item.get_ref(), Span::new(file, item.span())))
                .collect(),
        ),
        DeValue::Table(t) => ValueKind::Table(table(file, t, span)),
    };
    Value::new(kind, span)
}

fn float(text: &str) -> f64 {
    match text.trim_start_matches('+') {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" | "-nan" => f64::NAN,
        other => other.replace('_', "").parse().unwrap_or(f64::NAN),
    }
}
