//! Owns checking a node's `output` schema file when the workflow is
//! compiled, so that `validate` rejects what `apply` could not use: a file
//! that cannot be read, is not JSON, or is not a JSON Schema. The problem
//! is shown where it is in the schema file (a JSON error at its line and
//! column, a schema error at the value its JSON pointer names), beside the
//! `schema` key that names the file.

use std::ops::Range;
use std::path::Path;

use crate::diagnostic::{Code, Diagnostic};
use crate::model::Spanned;
use crate::source::{ReadError, Sources, Span, Syntax, display_name};

/// The diagnostic for the schema file at `path`, named by `schema`; `None`
/// when it is a JSON Schema.
pub(super) fn check(
    path: &Path,
    schema: &Spanned<String>,
    sources: &mut Sources,
) -> Option<Diagnostic> {
    let folder = path.parent().map(display_name).unwrap_or_default();
    let named = |d: Diagnostic| {
        d.label(schema.span, "the schema named here").help(format!(
            "the path is relative to the workflow file's folder ({folder}); the file must hold a JSON Schema, such as {{ \"type\": \"object\" }}"
        ))
    };
    let text = match crate::source::read_text(path) {
        Ok(text) => text,
        Err(ReadError::NotUtf8 { line, column, .. }) => {
            return Some(named(Diagnostic::error(
                Code::InvalidValue,
                format!(
                    "output schema `{}` is not UTF-8 (line {line}, column {column})",
                    schema.value
                ),
            )));
        }
        Err(ReadError::Io(e)) => {
            return Some(named(Diagnostic::error(
                Code::InvalidValue,
                format!("output schema `{}`: cannot read it: {e}", schema.value),
            )));
        }
    };
    let value = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v,
        Err(e) => {
            let at = offset_of(&text, e.line(), e.column());
            let file = register(path, text, sources);
            return Some(named(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("output schema `{}` is not JSON", schema.value),
                )
                .label(Span::new(file, at..at), strip_position(&e.to_string())),
            ));
        }
    };
    let Err(e) = jsonschema::validator_for(&value) else {
        return None;
    };
    let pointer: Vec<String> = e
        .instance_path()
        .segments()
        .map(|s| match s {
            jsonschema::paths::LocationSegment::Property(p) => p.into_owned(),
            jsonschema::paths::LocationSegment::Index(i) => i.to_string(),
        })
        .collect();
    let range = value_span(&text, &pointer).unwrap_or(0..0);
    let where_ = if pointer.is_empty() {
        String::new()
    } else {
        format!(" at /{}", pointer.join("/"))
    };
    let file = register(path, text, sources);
    Some(named(
        Diagnostic::error(
            Code::InvalidValue,
            format!(
                "output schema `{}` is not a valid JSON Schema{where_}: {e}",
                schema.value
            ),
        )
        .label(Span::new(file, range), "not valid here"),
    ))
}

/// The schema file's text, for diagnostics that point into it.
fn register(path: &Path, text: String, sources: &mut Sources) -> crate::source::FileId {
    sources
        .find(path)
        .unwrap_or_else(|| sources.add(path.to_path_buf(), display_name(path), text, Syntax::Text))
}

/// `serde_json`'s message without its " at line L column C", which the
/// label's place says.
fn strip_position(message: &str) -> String {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(m, _)| m)
        .to_string()
}

/// The byte offset of a 1-based line and column (in characters).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = text.get(start..).unwrap_or("");
    start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(rest.len(), |(b, _)| b)
}

/// Where the value a JSON pointer names is written in `text` (valid JSON).
fn value_span(text: &str, pointer: &[String]) -> Option<Range<usize>> {
    let mut s = Scanner {
        bytes: text.as_bytes(),
        at: 0,
    };
    s.space();
    for segment in pointer {
        match s.bytes.get(s.at)? {
            b'{' => {
                s.at += 1;
                loop {
                    s.space();
                    let key = s.string()?;
                    s.space();
                    if s.bytes.get(s.at)? != &b':' {
                        return None;
                    }
                    s.at += 1;
                    s.space();
                    if key == *segment {
                        break;
                    }
                    s.value()?;
                    s.space();
                    if s.bytes.get(s.at)? != &b',' {
                        return None;
                    }
                    s.at += 1;
                }
            }
            b'[' => {
                let index: usize = segment.parse().ok()?;
                s.at += 1;
                for _ in 0..index {
                    s.space();
                    s.value()?;
                    s.space();
                    if s.bytes.get(s.at)? != &b',' {
                        return None;
                    }
                    s.at += 1;
                }
                s.space();
            }
            _ => return None,
        }
    }
    let start = s.at;
    s.value()?;
    Some(start..s.at)
}

/// A cursor over JSON text that is known to parse.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    /// A string, decoded; the cursor after its closing quote.
    fn string(&mut self) -> Option<String> {
        let start = self.at;
        if self.bytes.get(self.at)? != &b'"' {
            return None;
        }
        self.at += 1;
        loop {
            match self.bytes.get(self.at)? {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    let raw = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
                    return serde_json::from_str(raw).ok();
                }
                _ => self.at += 1,
            }
        }
    }

    /// Skips one value.
    fn value(&mut self) -> Option<()> {
        match self.bytes.get(self.at)? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if *open == b'{' { b'}' } else { b']' };
                self.at += 1;
                loop {
                    self.space();
                    match self.bytes.get(self.at)? {
                        b if *b == close => {
                            self.at += 1;
                            return Some(());
                        }
                        b',' | b':' => self.at += 1,
                        _ => self.value()?,
                    }
                }
            }
            _ => {
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_finds_its_value() {
        let text = r#"{ "type": "object", "properties": { "a\"b": { "type": "strnig" }, "list": [1, {"x": [2, 3]}] } }"#;
        let at = |p: &[&str]| {
            let p: Vec<String> = p.iter().map(|s| (*s).to_string()).collect();
            value_span(text, &p).map(|r| &text[r])
        };
        assert_eq!(at(&["properties", "a\"b", "type"]), Some("\"strnig\""));
        assert_eq!(at(&["properties", "list", "1", "x", "1"]), Some("3"));
        assert_eq!(at(&["type"]), Some("\"object\""));
        assert_eq!(at(&["nope"]), None);
        assert_eq!(at(&[]).map(str::len), Some(text.len()));
    }

    #[test]
    fn lines_and_columns_are_offsets() {
        assert_eq!(offset_of("ab\ncdé\nf", 2, 3), 5);
        assert_eq!(offset_of("ab\ncdé\nf", 3, 1), 8);
    }
}
