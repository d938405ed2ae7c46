//! Small value types shared by the model: a value with its span, a parsed
//! duration that remembers how it was written, and user-keyed maps.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::source::Span;

/// A value and where the user wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A duration such as `30m`, `1h 30m` or `10s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration {
    pub millis: u64,
}

impl Duration {
    /// Parses the friendly forms (`90s`, `30m`, `1h 30m`, `2 hours`), and plain
    /// ISO 8601 (`PT30M`). Zero and negative durations are refused.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let d = parse_signed(text)?;
        if d.is_zero() {
            return Err(DurationError::NotPositive);
        }
        let millis = u64::try_from(d.as_millis()).map_err(|_| DurationError::TooLong)?;
        Ok(Self { millis })
    }

    /// A duration given on the command line (`--grace 300ms`): the same
    /// forms, zero allowed.
    pub fn parse_flag(text: &str) -> Result<std::time::Duration, DurationError> {
        std::time::Duration::try_from(parse_signed(text)?).map_err(|_| DurationError::TooLong)
    }

    /// Canonical text (`1h 30m`), so that equal durations print the same
    /// whichever way they were written.
    pub fn to_text(self) -> String {
        let d = jiff::SignedDuration::from_millis(i64::try_from(self.millis).unwrap_or(i64::MAX));
        format!("{d:#}")
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as `90s`, `30m` or `1h 30m`.",
            "examples": ["30m", "1h 30m", "10s"]
        })
    }
}

/// A duration that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("days and weeks are not accepted; write hours, such as \"48h\"")]
    Calendar,
    #[error("a duration must be greater than zero")]
    NotPositive,
    #[error("duration too long")]
    TooLong,
    #[error("`{0}` is not a duration: write it with its unit, such as 300ms, 10s, 2m or 1h30m")]
    Syntax(String),
}

/// Reads the friendly and ISO 8601 forms; negative durations are refused.
fn parse_signed(text: &str) -> Result<jiff::SignedDuration, DurationError> {
    let parsed: jiff::SignedDuration = text.trim().parse().map_err(|_: jiff::Error| {
        // A fixed duration has no calendar units; say how to write one.
        let lower = text.to_ascii_lowercase();
        let calendar = lower
            .split(|c: char| c.is_ascii_digit() || c.is_whitespace() || c == '.')
            .any(|unit| matches!(unit, "d" | "day" | "days" | "w" | "wk" | "week" | "weeks"));
        if calendar {
            DurationError::Calendar
        } else {
            DurationError::Syntax(text.trim().to_string())
        }
    })?;
    if parsed.is_negative() {
        return Err(DurationError::NotPositive);
    }
    Ok(parsed)
}

/// A map whose keys the user chose (params, vars, env, with): kept in the
/// order written, keys never converted between syntaxes.
pub(crate) type UserMap<T> = Vec<(Spanned<String>, T)>;
