//! Lowers TOML text into the spanned tree. TOML keys are already in canonical
//! form, so this is a plain walk; syntax errors are collected (the parser
//! recovers) rather than stopping at the first.

use toml::de::{DeTable, DeValue};

use super::tree::{Key, Table, Value, ValueKind};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{FileId, Span};

/// Parses `text`; on syntax errors returns them all and no tree.
pub fn parse(file: FileId, text: &str) -> Result<Table, Vec<Diagnostic>> {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                let message = e.message().trim().to_string();
                Diagnostic::error(Code::TomlSyntax, format!("invalid TOML: {message}"))
                    .label(Span::new(file, span), "here")
                    .help("fix the TOML syntax; see https://toml.io/en/v1.0.0")
            })
            .collect());
    }
    let span = Span::new(file, 0..text.len());
    Ok(table(file, root.get_ref(), span))
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
            Err(_) => ValueKind::String(i.to_string()),
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
