//! One bus record: the message as read back, the message to append, and the
//! exact text written for it. The header is written by hand (it is a fixed,
//! flat shape, and this is the hot path of every append); it is read with a
//! real YAML parser, so any valid indentation or quoting the Go seed writes
//! is accepted.

use std::collections::BTreeMap;

/// A message as read from a bus.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Message {
    pub msg_id: String,
    pub ts: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub project_id: String,
    pub task_id: String,
    pub run_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    pub body: String,
}

/// A message to append; the writer gives it its id and time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewMessage {
    pub kind: String,
    pub project_id: String,
    pub task_id: String,
    pub run_id: String,
    /// Parent message ids (written as `- msg_id: ..` items).
    pub parents: Vec<String>,
    /// Flat string metadata, as the seed reads it.
    pub meta: BTreeMap<String, String>,
    pub body: String,
}

impl NewMessage {
    /// The record's text, starting with its `---` line and ending with a newline.
    pub fn render(&self, msg_id: &str, ts: &str) -> String {
        let mut out = String::with_capacity(160 + self.body.len());
        self.render_into(&mut out, msg_id, ts);
        out
    }

    /// Appends the record's text to `out`, which a writer reuses from one
    /// append to the next.
    pub(crate) fn render_into(&self, out: &mut String, msg_id: &str, ts: &str) {
        out.reserve(160 + self.body.len());
        out.push_str("---\nmsg_id: ");
        push_scalar(out, msg_id);
        out.push_str("\nts: ");
        out.push_str(ts);
        out.push_str("\ntype: ");
        push_scalar(out, &self.kind);
        out.push_str("\nproject_id: ");
        push_scalar(out, &self.project_id);
        out.push_str("\ntask_id: ");
        push_scalar(out, &self.task_id);
        out.push_str("\nrun_id: ");
        push_scalar(out, &self.run_id);
        // The body's length, so that a reader can tell a body cut short
        // (a writer that died mid-write) from a whole one.
        let body = if self.body.contains("---") {
            std::borrow::Cow::Owned(escape_body(&self.body))
        } else {
            std::borrow::Cow::Borrowed(self.body.as_str())
        };
        out.push_str("\nbody_bytes: ");
        out.push_str(&body.len().to_string());
        out.push('\n');
        if self.kind == "ISSUE" {
            out.push_str("issue_id: ");
            push_scalar(out, msg_id);
            out.push('\n');
        }
        if !self.parents.is_empty() {
            out.push_str("parents:\n");
            for p in &self.parents {
                out.push_str("    - msg_id: ");
                push_scalar(out, p);
                out.push('\n');
            }
        }
        if !self.meta.is_empty() {
            out.push_str("meta:\n");
            for (k, v) in &self.meta {
                out.push_str("    ");
                push_scalar(out, k);
                out.push_str(": ");
                push_scalar(out, v);
                out.push('\n');
            }
        }
        out.push_str("---\n");
        out.push_str(&body);
        // Always one newline more than the body has, which the reader takes
        // off: every body, trailing newlines included, reads back exactly.
        out.push('\n');
    }
}

/// Appends `s` as a YAML scalar: plain when that cannot be misread, else
/// double-quoted (JSON string syntax is valid YAML).
fn push_scalar(out: &mut String, s: &str) {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./@+-".contains(&b))
        && s.as_bytes()[0].is_ascii_alphabetic()
        && !(s.len() <= 5
            && ["true", "false", "yes", "no", "on", "off", "y", "n", "null"]
                .iter()
                .any(|word| word.eq_ignore_ascii_case(s)));
    if plain {
        out.push_str(s);
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string()));
    }
}

/// Whether a line would be read as a record separator (`---`, maybe with
/// backslashes in front from an earlier escape). Readers, ours and the Go
/// seed's, take off every trailing carriage return, so `---\r\r` is a
/// separator too.
fn is_fence(line: &str, min_backslashes: usize) -> bool {
    let line = line.trim_end_matches('\r');
    let rest = line.trim_start_matches('\\');
    rest == "---" && line.len() - rest.len() >= min_backslashes
}

/// Escapes body lines that would end the record: `---` becomes `\---`, and a
/// line that already starts with backslashes before `---` gets one more, so
/// that [`unescape_body`] restores every body exactly.
pub fn escape_body(body: &str) -> String {
    if !body.contains("---") {
        return body.to_string();
    }
    body.split_inclusive('\n')
        .map(|line| {
            if is_fence(line.trim_end_matches('\n'), 0) {
                format!("\\{line}")
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// Reverses [`escape_body`].
pub fn unescape_body(body: &str) -> String {
    if !body.contains("\\---") {
        return body.to_string();
    }
    body.split_inclusive('\n')
        .map(|line| {
            if is_fence(line.trim_end_matches('\n'), 1) {
                line[1..].to_string()
            } else {
                line.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_in_bodies_round_trip() {
        for body in [
            "---",
            "a\n---\nb",
            "\\---",
            "\\\\---\n",
            "--- not a fence",
            "x---",
            "---\r\n",
            "---\r\r\nx",
            "\\---\r\r",
            "end\n\n",
        ] {
            let escaped = escape_body(body);
            assert!(
                escaped.lines().all(|l| l.trim_end_matches('\r') != "---"),
                "{escaped:?}"
            );
            assert_eq!(unescape_body(&escaped), body);
        }
    }

    fn scalar(s: &str) -> String {
        let mut out = String::new();
        push_scalar(&mut out, s);
        out
    }

    #[test]
    fn scalars_quote_what_yaml_would_misread() {
        assert_eq!(scalar("PROGRESS"), "PROGRESS");
        assert_eq!(scalar("task-20260301-100000-x"), "task-20260301-100000-x");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("Null"), "\"Null\"");
        assert_eq!(scalar("nil"), "nil");
        assert_eq!(scalar("0001-x"), "\"0001-x\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
    }

    #[test]
    fn records_have_the_seed_layout() {
        let m = NewMessage {
            kind: "DECISION".into(),
            project_id: "payments".into(),
            task_id: "task-1".into(),
            meta: BTreeMap::from([("stage".to_string(), "review".to_string())]),
            body: "Chose optimistic locking.".into(),
            ..NewMessage::default()
        };
        let text = m.render("MSG-1", "2026-03-01T10:15:02.123Z");
        assert_eq!(
            text,
            "---\nmsg_id: MSG-1\nts: 2026-03-01T10:15:02.123Z\ntype: DECISION\nproject_id: payments\ntask_id: task-1\nrun_id: \"\"\nbody_bytes: 25\nmeta:\n    stage: review\n---\nChose optimistic locking.\n"
        );
    }
}
