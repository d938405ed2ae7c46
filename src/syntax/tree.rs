//! Owns the spanned value tree that both surface syntaxes lower into: the
//! first stage of the front end. It knows nothing about workflows; it only
//! keeps every key and value with the span where the user wrote it, and the
//! key as the user spelled it (`max-iterations` in KDL).

use crate::source::Span;

/// A key of a table, in canonical (TOML) form plus the user's own spelling.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    /// Canonical name: schema keys use `_`; user keys (params, vars, env, node
    /// ids) are exactly as written.
    pub name: String,
    /// As written in the file, for messages.
    pub spelled: String,
    pub span: Span,
}

/// A table: ordered, keys unique.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    pub span: Span,
    pub entries: Vec<(Key, Value)>,
}

impl Table {
    pub(crate) fn new(span: Span) -> Self {
        Self {
            span,
            entries: Vec::new(),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueKind {
    String(String),
    Integer(i64),
    /// An integer beyond 64 bits, as written: each key that reads it says
    /// which range it takes.
    HugeInteger(String),
    Float(f64),
    Bool(bool),
    /// A TOML date or time, kept as written; no workflow key takes one.
    Datetime(String),
    Array(Vec<Value>),
    Table(Table),
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

impl Value {
    pub(crate) fn new(kind: ValueKind, span: Span) -> Self {
        Self { kind, span }
    }

    /// What the value is, in the words a type error uses.
    pub(crate) fn type_name(&self) -> &'static str {
        match self.kind {
            ValueKind::String(_) => "a string",
            ValueKind::Integer(_) | ValueKind::HugeInteger(_) => "an integer",
            ValueKind::Float(_) => "a float",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Datetime(_) => "a datetime",
            ValueKind::Array(_) => "a list",
            ValueKind::Table(_) => "a table",
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::String(s) => Some(s),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn as_table(&self) -> Option<&Table> {
        match &self.kind {
            ValueKind::Table(t) => Some(t),
            _ => None,
        }
    }

    /// Plain JSON, for values the user passes through untouched (params, vars,
    /// list items).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match &self.kind {
            // A huge integer is reported where it is read (`Cx::json`).
            ValueKind::String(s) | ValueKind::Datetime(s) | ValueKind::HugeInteger(s) => {
                serde_json::Value::from(s.as_str())
            }
            ValueKind::Integer(i) => serde_json::Value::from(*i),
            ValueKind::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            ValueKind::Bool(b) => serde_json::Value::Bool(*b),
            ValueKind::Array(items) => items.iter().map(Value::to_json).collect(),
            ValueKind::Table(t) => serde_json::Value::Object(
                t.entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}
