//! Owns what a finished instance is: its status, why it stopped, what it
//! answered and what it cost, and how that is shown to templates as
//! `needs.X` (DESIGN §2.1, §9.5). Also reads JSON out of an answer (§9.10).

use std::path::PathBuf;
use std::time::Duration;

use minijinja::{Value, context};
use serde::Serialize;

/// An instance's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    Failed,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// Tokens and dollars an agent reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd += other.cost_usd;
    }

    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// An agent's `price`, for backends that report tokens but no cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    /// US dollars per million input tokens.
    pub input_per_mtok: f64,
    /// US dollars per million output tokens.
    pub output_per_mtok: f64,
}

impl Price {
    /// What `input` and `output` tokens cost, in dollars.
    pub fn cost(self, input: u64, output: u64) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "token counts stay far below 2^52"
        )]
        let (input, output) = (input as f64, output as f64);
        (input * self.input_per_mtok + output * self.output_per_mtok) / 1e6
    }
}

/// A finished instance.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub status: Status,
    /// `done_file`, `promise`, .. when done; the limit hit when failed; why when skipped.
    pub stop_reason: String,
    pub iterations: u32,
    /// The last iteration's final answer, capped for templates.
    pub output: String,
    pub json: Option<serde_json::Value>,
    /// Why it failed, when the stop reason alone does not say (a template
    /// error, a missing program, a fan-out source that is not a list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub usage: Usage,
    pub task_id: Option<String>,
    pub task_dir: Option<PathBuf>,
    /// The last run's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The fingerprint it completed with, when not the one it started with.
    #[serde(skip)]
    pub fingerprint: Option<std::sync::Arc<super::fingerprint::Fingerprint>>,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Outcome {
    /// An instance that never ran.
    pub fn skipped(reason: impl Into<String>) -> Self {
        Self::ended(Status::Skipped, reason)
    }

    /// An instance that ended without running an agent (a gate, a fan-out).
    pub fn ended(status: Status, reason: impl Into<String>) -> Self {
        Self {
            status,
            stop_reason: reason.into(),
            iterations: 0,
            output: String::new(),
            json: None,
            error: None,
            exit_code: None,
            usage: Usage::default(),
            task_id: None,
            task_dir: None,
            run_id: None,
            fingerprint: None,
            duration: Duration::ZERO,
        }
    }

    /// `needs.X` for one instance of X.
    pub fn to_value(&self, item: Option<&serde_json::Value>) -> Value {
        context! {
            output => self.output.as_str(),
            json => self.json.as_ref().map_or(Value::UNDEFINED, crate::prompt::context),
            status => self.status.as_str(),
            stop_reason => self.stop_reason.as_str(),
            iterations => self.iterations,
            item => item.map(crate::prompt::context),
            cost_usd => self.usage.cost_usd,
            task_dir => self.task_dir.as_ref().map(|d| d.display().to_string()),
        }
    }
}

/// Text handed to templates is capped; the raw output stays on disk in full.
pub const TEMPLATE_TEXT_CAP: usize = 1 << 20;

/// Caps `text` at [`TEMPLATE_TEXT_CAP`] bytes (on a char boundary), saying so.
pub fn cap(mut text: String) -> String {
    if text.len() > TEMPLATE_TEXT_CAP {
        let mut end = TEMPLATE_TEXT_CAP;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[conductor: output cut at 1 MiB; the full text is in output.md]\n");
    }
    text
}

/// The JSON in an answer: the whole text if it parses, else the last fenced
/// json block, else the last balanced `{..}` or `[..]`.
pub fn extract_json(text: &str) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_str(text.trim()) {
        return Some(v);
    }
    let mut fenced = None;
    let mut rest = text;
    while let Some(start) = rest.find("```json") {
        let body = &rest[start + 7..];
        let Some(end) = body.find("```") else { break };
        if let Ok(v) = serde_json::from_str(body[..end].trim()) {
            fenced = Some(v);
        }
        rest = &body[end + 3..];
    }
    if fenced.is_some() {
        return fenced;
    }
    // The last balanced value: try each closing bracket from the end, and
    // parse from each opening bracket before it.
    let bytes = text.as_bytes();
    // Bounded, so a huge answer full of brackets cannot take quadratic time.
    let ends = (0..bytes.len())
        .rev()
        .filter(|&i| matches!(bytes[i], b'}' | b']'));
    for end in ends.take(64) {
        let open = if bytes[end] == b'}' { b'{' } else { b'[' };
        for start in (0..end).rev().filter(|&i| bytes[i] == open).take(256) {
            if let Ok(v) = serde_json::from_str(&text[start..=end]) {
                return Some(v);
            }
        }
    }
    None
}

/// Follows a dotted path (`json.tasks`, `json.items.0.name`) into a result.
pub fn at_path<'a>(root: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(root, |v, part| match v {
            serde_json::Value::Object(m) => m.get(part),
            serde_json::Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_found_whole_fenced_or_balanced() {
        assert_eq!(extract_json(" [1, 2] "), Some(serde_json::json!([1, 2])));
        assert_eq!(
            extract_json("text\n```json\n{\"a\": 1}\n```\nmore ```json\n{\"b\": 2}\n```"),
            Some(serde_json::json!({"b": 2}))
        );
        assert_eq!(
            extract_json("I found {\"tasks\": [\"x\"]} and that is all."),
            Some(serde_json::json!({"tasks": ["x"]}))
        );
        assert_eq!(extract_json("nothing here"), None);
    }

    #[test]
    fn paths_index_objects_and_arrays() {
        let v = serde_json::json!({"json": {"items": [{"name": "a"}]}});
        assert_eq!(
            at_path(&v, "json.items.0.name"),
            Some(&serde_json::json!("a"))
        );
        assert_eq!(at_path(&v, "json.missing"), None);
    }

    #[test]
    fn prices_are_per_million_tokens() {
        let p = Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
        };
        assert!((p.cost(1000, 50) - 0.00375).abs() < 1e-12);
        assert!(p.cost(0, 0).abs() < f64::EPSILON);
        let input_only = Price {
            input_per_mtok: 2.0,
            ..Price::default()
        };
        assert!((input_only.cost(500_000, 1_000_000) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn cap_keeps_char_boundaries() {
        let text = "é".repeat(TEMPLATE_TEXT_CAP);
        let capped = cap(text);
        assert!(capped.ends_with("output.md]\n"));
        assert!(capped.len() < TEMPLATE_TEXT_CAP + 100);
    }
}
