//! The reading primitives the decoders share: typed reads of one value, and a
//! table reader that reports the keys nobody asked for, with "did you mean".

use crate::diagnostic::{Code, Diagnostic, Diagnostics, suggestion_help};
use crate::model::{Duration, Spanned, UserMap};
use crate::schema;
use crate::source::{Span, Syntax};
use crate::syntax::{Key, Table, Value, ValueKind};

/// An integer type a count is read into, and the largest value it holds
/// (as the workflow file writes it, an `i64`).
pub(crate) trait Count: TryFrom<i64> {
    const MAX: i64;
}

impl Count for u32 {
    const MAX: i64 = 4_294_967_295;
}

impl Count for u64 {
    const MAX: i64 = i64::MAX;
}

/// Decoding context: where diagnostics go and how the file spells keys.
#[derive(Debug)]
pub(super) struct Cx<'a> {
    pub diags: &'a mut Diagnostics,
    pub syntax: Syntax,
}

/// Reads a table whose allowed keys come from the schema definition `def`.
#[derive(Debug)]
pub(crate) struct Fields<'t> {
    table: &'t Table,
    allowed: Vec<&'t str>,
    used: Vec<bool>,
    what: String,
}

impl<'t> Fields<'t> {
    pub(crate) fn new(table: &'t Table, def: &'static str, what: impl Into<String>) -> Self {
        Self::with_keys(
            table,
            schema::keys(def).iter().map(String::as_str).collect(),
            what,
        )
    }

    pub(crate) fn with_keys(
        table: &'t Table,
        allowed: Vec<&'t str>,
        what: impl Into<String>,
    ) -> Self {
        Self {
            table,
            allowed,
            used: vec![false; table.entries.len()],
            what: what.into(),
        }
    }

    /// The entry for `name`, marking it read.
    pub(crate) fn get(&mut self, name: &str) -> Option<(&'t Key, &'t Value)> {
        debug_assert!(
            self.allowed.contains(&name),
            "{name} is not in the schema of {}",
            self.what
        );
        let i = self
            .table
            .entries
            .iter()
            .position(|(k, _)| k.name == name)?;
        self.used[i] = true;
        let (k, v) = &self.table.entries[i];
        Some((k, v))
    }

    /// Reports every key that was not read.
    pub(crate) fn finish(self, cx: &mut Cx<'_>) {
        for (i, (key, _)) in self.table.entries.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let spelled: Vec<String> = self.allowed.iter().map(|k| cx.syntax.spell(k)).collect();
            let help = suggestion_help(
                &key.spelled,
                spelled.iter().map(String::as_str),
                "allowed keys are",
            );
            cx.diags.push(
                Diagnostic::error(
                    Code::UnknownKey,
                    format!("unknown key `{}` in {}", key.spelled, self.what),
                )
                .label(key.span, "not a key here")
                .maybe_help(help),
            );
        }
    }
}

impl Cx<'_> {
    pub(crate) fn spell(&self, key: &str) -> String {
        self.syntax.spell(key)
    }

    pub(crate) fn wrong_type(&mut self, key: &Key, value: &Value, expected: &str) {
        // A quoted number or boolean is the usual slip: say so.
        let help = value.as_str().and_then(|s| {
            let bare = s.trim();
            let number = expected.starts_with("an integer") || expected.starts_with("a number");
            let fits = (number && bare.parse::<f64>().is_ok())
                || (expected.starts_with("a boolean") && matches!(bare, "true" | "false"));
            fits.then(|| format!("remove the quotes: write {bare}, not \"{s}\""))
        });
        self.diags.push(
            Diagnostic::error(
                Code::WrongType,
                format!(
                    "`{}` must be {expected}, not {}",
                    key.spelled,
                    value.type_name()
                ),
            )
            .label(value.span, format!("expected {expected}"))
            .maybe_help(help),
        );
    }

    pub(crate) fn invalid(&mut self, value: &Value, message: String, help: Option<String>) {
        self.diags.push(
            Diagnostic::error(Code::InvalidValue, message)
                .label(value.span, "invalid value")
                .maybe_help(help),
        );
    }

    /// A required key is absent; `at` is the table's own key (or the start of
    /// the file for the top level), not the whole table.
    pub(crate) fn missing(&mut self, at: Span, key: &str, what: &str, help: &str) {
        let spelled = self.spell(key);
        self.diags.push(
            Diagnostic::error(Code::MissingKey, format!("{what} has no `{spelled}`"))
                .label(at, format!("`{spelled}` is required here"))
                .help(help.to_string()),
        );
    }

    /// Picks the example written in the file's own syntax, for help lines.
    pub(crate) fn example<'s>(&self, toml: &'s str, kdl: &'s str) -> &'s str {
        match self.syntax {
            Syntax::Kdl => kdl,
            Syntax::Toml | Syntax::Text => toml,
        }
    }

    pub(crate) fn table<'v>(&mut self, key: &Key, value: &'v Value) -> Option<&'v Table> {
        if let ValueKind::Table(t) = &value.kind {
            Some(t)
        } else {
            self.wrong_type(key, value, "a table");
            None
        }
    }

    pub(crate) fn string(&mut self, key: &Key, value: &Value) -> Option<Spanned<String>> {
        if let ValueKind::String(s) = &value.kind {
            Some(Spanned::new(s.clone(), value.span))
        } else {
            self.wrong_type(key, value, "a string");
            None
        }
    }

    pub(crate) fn boolean(&mut self, key: &Key, value: &Value) -> Option<Spanned<bool>> {
        if let ValueKind::Bool(b) = value.kind {
            Some(Spanned::new(b, value.span))
        } else {
            self.wrong_type(key, value, "a boolean (`true` or `false`)");
            None
        }
    }

    pub(crate) fn integer(&mut self, key: &Key, value: &Value) -> Option<Spanned<i64>> {
        match &value.kind {
            ValueKind::Integer(i) => Some(Spanned::new(*i, value.span)),
            ValueKind::HugeInteger(text) => {
                self.too_large(key, value, text, i64::MIN, i64::MAX);
                None
            }
            _ => {
                self.wrong_type(key, value, "an integer");
                None
            }
        }
    }

    /// An integer beyond what `key` takes, naming the range it takes.
    fn too_large(&mut self, key: &Key, value: &Value, text: &str, min: i64, max: i64) {
        self.diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                format!(
                    "`{}` must be a whole number from {min} to {max}, not {text}",
                    key.spelled
                ),
            )
            .label(value.span, format!("more than {max}"))
            .help(format!("write a number no larger than {max}")),
        );
    }

    /// A count of at least 1 (iterations, parallelism, items, tokens), no
    /// larger than its type holds.
    pub(crate) fn count<T: Count>(&mut self, key: &Key, value: &Value) -> Option<Spanned<T>> {
        if let ValueKind::HugeInteger(text) = &value.kind
            && !text.starts_with('-')
        {
            self.too_large(key, value, text, 1, T::MAX);
            return None;
        }
        let i = self.integer(key, value)?;
        match T::try_from(i.value) {
            Ok(n) if i.value >= 1 => Some(Spanned::new(n, i.span)),
            _ if i.value > T::MAX => {
                self.too_large(key, value, &i.value.to_string(), 1, T::MAX);
                None
            }
            _ => {
                self.invalid(
                    value,
                    format!(
                        "`{}` must be a whole number of at least 1, not {}",
                        key.spelled, i.value
                    ),
                    None,
                );
                None
            }
        }
    }

    /// A value passed on as it is (params, vars, items, matrix values):
    /// its integers must fit in 64 bits, as templates and JSON hold them.
    pub(crate) fn json(&mut self, value: &Value) -> serde_json::Value {
        self.check_integers(value);
        value.to_json()
    }

    fn check_integers(&mut self, value: &Value) {
        match &value.kind {
            ValueKind::HugeInteger(text) => self.diags.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("{text} does not fit in a 64-bit integer"),
                )
                .label(value.span, "out of range")
                .help(format!(
                    "integers go from {} to {}; to pass the digits on as text, quote them: \"{text}\"",
                    i64::MIN,
                    i64::MAX
                )),
            ),
            ValueKind::Array(items) => {
                for i in items {
                    self.check_integers(i);
                }
            }
            ValueKind::Table(t) => {
                for (_, v) in &t.entries {
                    self.check_integers(v);
                }
            }
            _ => {}
        }
    }

    /// A positive amount of money (integers allowed: `budget_usd = 5`).
    pub(crate) fn money(&mut self, key: &Key, value: &Value) -> Option<Spanned<f64>> {
        #[expect(clippy::cast_precision_loss, reason = "budgets are small numbers")]
        let n = match value.kind {
            ValueKind::Float(f) => f,
            ValueKind::Integer(i) => i as f64,
            ValueKind::HugeInteger(ref text) => text.parse().unwrap_or(f64::NAN),
            _ => {
                self.wrong_type(key, value, "a number");
                return None;
            }
        };
        if n.is_finite() && n > 0.0 {
            Some(Spanned::new(n, value.span))
        } else {
            // `nan`, `inf` and negative amounts are valid TOML and KDL
            // floats, but no amount of money: a budget compared with them
            // would never, or always, be used up.
            let shown = match value.kind {
                ValueKind::Integer(i) => i.to_string(),
                _ => n.to_string().to_lowercase(),
            };
            self.invalid(
                value,
                format!(
                    "`{}` must be a finite number greater than 0, not {shown}",
                    key.spelled
                ),
                Some("write an amount in US dollars, such as 2.50".to_string()),
            );
            None
        }
    }

    pub(crate) fn string_list(&mut self, key: &Key, value: &Value) -> Option<Vec<Spanned<String>>> {
        let ValueKind::Array(items) = &value.kind else {
            self.wrong_type(key, value, "a list of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match &item.kind {
                ValueKind::String(s) => out.push(Spanned::new(s.clone(), item.span)),
                _ => {
                    self.diags.push(
                        Diagnostic::error(
                            Code::WrongType,
                            format!(
                                "every item of `{}` must be a string, not {}",
                                key.spelled,
                                item.type_name()
                            ),
                        )
                        .label(item.span, "expected a string"),
                    );
                }
            }
        }
        Some(out)
    }

    pub(crate) fn duration(&mut self, key: &Key, value: &Value) -> Option<Spanned<Duration>> {
        // A bare number has no unit: say how a duration is written.
        if let ValueKind::Integer(_) | ValueKind::Float(_) = &value.kind {
            self.diags.push(
                Diagnostic::error(
                    Code::WrongType,
                    format!("`{}` must be a duration, not a number", key.spelled),
                )
                .label(value.span, "a number has no unit")
                .help("write a duration as a string with its unit, such as \"30s\", \"10m\" or \"1h 30m\""),
            );
            return None;
        }
        let text = self.string(key, value)?;
        match Duration::parse(&text.value) {
            Ok(d) => Some(Spanned::new(d, value.span)),
            Err(why) => {
                // The help says how to write one; the label only what is wrong.
                let short = match why {
                    crate::model::DurationError::Syntax(_) => "not a duration".to_string(),
                    other => other.to_string(),
                };
                self.diags.push(
                    Diagnostic::error(
                        Code::BadDuration,
                        format!("`{}` is not a valid duration", key.spelled),
                    )
                    .label(value.span, short)
                    .help("write a duration such as \"90s\", \"30m\" or \"1h 30m\""),
                );
                None
            }
        }
    }

    pub(crate) fn regex(&mut self, key: &Key, value: &Value) -> Option<Spanned<String>> {
        let text = self.string(key, value)?;
        match regex::Regex::new(&text.value) {
            Ok(_) => Some(text),
            Err(e) => {
                let why = e.to_string();
                let last = why.lines().last().unwrap_or("invalid regex").trim();
                let last = last.strip_prefix("error: ").unwrap_or(last).to_string();
                self.diags.push(
                    Diagnostic::error(
                        Code::BadRegex,
                        format!("`{}` is not a valid regular expression", key.spelled),
                    )
                    .label(value.span, last)
                    .help("the syntax is Rust's `regex` crate; escape literal characters such as `(` as `\\(`"),
                );
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        key: &Key,
        value: &Value,
        all: &[(&'static str, T)],
    ) -> Option<Spanned<T>> {
        let text = self.string(key, value)?;
        if let Some((_, v)) = all.iter().find(|(n, _)| *n == text.value) {
            return Some(Spanned::new(*v, value.span));
        }
        let names = all.iter().map(|(n, _)| *n);
        let help = suggestion_help(&text.value, names, "choose one of");
        self.invalid(
            value,
            format!("`{}` cannot be \"{}\"", key.spelled, text.value),
            help,
        );
        None
    }

    /// A table of environment variables: names a process can carry, to
    /// strings.
    pub(crate) fn env_map(&mut self, key: &Key, value: &Value) -> UserMap<Spanned<String>> {
        let Some(t) = self.table(key, value) else {
            return Vec::new();
        };
        t.entries
            .iter()
            .filter_map(|(k, v)| {
                let s = self.string(k, v)?;
                let name_ok = self.env_name(&k.name, k.span);
                if s.value.contains('\0') {
                    self.diags.push(
                        Diagnostic::error(
                            Code::InvalidValue,
                            format!("the value of `{}` holds a NUL character", k.name),
                        )
                        .label(v.span, "no environment variable can hold NUL")
                        .help("remove the NUL (`\\u0000`) from the value"),
                    );
                    return None;
                }
                name_ok.then(|| (Spanned::new(k.name.clone(), k.span), s))
            })
            .collect()
    }

    /// An environment variable name: a process's environment is a list of
    /// `NAME=VALUE` strings, so a name is not empty and holds neither `=`
    /// nor NUL. Says so and returns `false` when it is not one.
    pub(crate) fn env_name(&mut self, name: &str, span: Span) -> bool {
        let why = if name.is_empty() {
            "an environment variable name cannot be empty".to_string()
        } else if name.contains('=') {
            format!("`{name}` cannot be an environment variable name: it holds `=`")
        } else if name.contains('\0') {
            format!(
                "`{}` cannot be an environment variable name: it holds a NUL character",
                name.escape_debug()
            )
        } else {
            return true;
        };
        self.diags.push(
            Diagnostic::error(Code::InvalidValue, why)
                .label(span, "no process can carry this name")
                .help(
                    "a process's environment is `NAME=VALUE` strings, so a name needs at least one character and no `=` or NUL; use letters, digits and `_`, such as `MY_VAR`",
                ),
        );
        false
    }

    /// A table of user-chosen keys to any values (vars, with).
    pub(crate) fn value_map(
        &mut self,
        key: &Key,
        value: &Value,
    ) -> UserMap<Spanned<serde_json::Value>> {
        let Some(t) = self.table(key, value) else {
            return Vec::new();
        };
        t.entries
            .iter()
            .map(|(k, v)| {
                (
                    Spanned::new(k.name.clone(), k.span),
                    Spanned::new(self.json(v), v.span),
                )
            })
            .collect()
    }
}
