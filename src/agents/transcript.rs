//! Owns reading a CLI agent's recorded JSON event stream as a transcript
//! for `conductor logs` (docs/run-store.md, "`status` and `logs`"): the
//! assistant's text, each tool call with its arguments and its result
//! folded to a few lines, errors, and the run's tokens and cost. The event
//! shapes are those of the real CLIs, as `tests/fixtures/streams` records
//! them: claude's `assistant`/`user`/`result` events, codex's `item.*` and
//! `turn.*` events, gemini's `message`/`tool_use`/`tool_result`/`result`.

use std::fmt::Write as _;

use serde_json::Value;

use crate::model::AgentKind;

/// The lines of a tool's result shown before the rest is folded.
const RESULT_LINES: usize = 3;
/// The longest line of a tool's result shown.
const RESULT_WIDTH: usize = 160;

/// A transcript being read, one stream line at a time.
#[derive(Debug)]
pub(crate) struct Transcript {
    kind: AgentKind,
    /// Gemini sends the assistant's text in pieces: held until the next
    /// other event.
    pending: String,
}

impl Transcript {
    /// A transcript of a `kind` stream; `None` for a kind without one.
    pub(crate) fn new(kind: AgentKind) -> Option<Self> {
        matches!(
            kind,
            AgentKind::Claude | AgentKind::Codex | AgentKind::Gemini
        )
        .then(|| Self {
            kind,
            pending: String::new(),
        })
    }

    /// What one line of the stream adds to the transcript (maybe nothing).
    /// A line that is not JSON is shown as it is.
    pub(crate) fn line(&mut self, line: &str) -> String {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return if line.trim().is_empty() {
                String::new()
            } else {
                format!("{}{line}\n", self.flush())
            };
        };
        let said = match self.kind {
            AgentKind::Claude => claude(&v),
            AgentKind::Codex => codex(&v),
            _ => {
                if v["type"] == "message" && v["role"] == "assistant" {
                    self.pending
                        .push_str(v["content"].as_str().unwrap_or_default());
                    return String::new();
                }
                gemini(&v)
            }
        };
        if said.is_empty() {
            return said;
        }
        format!("{}{said}", self.flush())
    }

    /// What is still held, at the end of the stream.
    pub(crate) fn finish(&mut self) -> String {
        self.flush()
    }

    fn flush(&mut self) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        let text = std::mem::take(&mut self.pending);
        said("assistant", &text)
    }
}

/// `who: text`, on as many lines as the text has.
fn said(who: &str, text: &str) -> String {
    let text = text.trim_end();
    if text.is_empty() {
        return String::new();
    }
    format!("{who}: {text}\n")
}

/// A tool call: `tool NAME: ARGUMENT`.
fn call(name: &str, input: &Value) -> String {
    let argument = super::activity::detail(input).unwrap_or_else(|| {
        if input.is_null() {
            String::new()
        } else {
            input.to_string()
        }
    });
    format!("tool {name}: {argument}\n")
}

/// A tool's result, indented, its first lines shown and the rest folded.
fn result(status: &str, text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut out = format!("  ⎿ {status}");
    if lines.is_empty() {
        out.push_str(" (no output)\n");
        return out;
    }
    out.push('\n');
    for l in lines.iter().take(RESULT_LINES) {
        let cut: String = l.chars().take(RESULT_WIDTH).collect();
        let _ = writeln!(out, "    {cut}");
    }
    if lines.len() > RESULT_LINES {
        let _ = writeln!(out, "    … {} more lines", lines.len() - RESULT_LINES);
    }
    out
}

/// `tokens: 2000 in, 100 out · $0.0100`.
fn usage(input: &Value, output: &Value, cost: Option<f64>) -> String {
    let mut out = format!(
        "tokens: {} in, {} out",
        input.as_u64().unwrap_or(0),
        output.as_u64().unwrap_or(0)
    );
    if let Some(c) = cost {
        let _ = write!(out, " · ${c:.4}");
    }
    out.push('\n');
    out
}

fn claude(v: &Value) -> String {
    match v["type"].as_str() {
        Some("assistant") => v["message"]["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .map(|b| match b["type"].as_str() {
                        Some("text") => said("assistant", b["text"].as_str().unwrap_or_default()),
                        Some("tool_use") => call(b["name"].as_str().unwrap_or("tool"), &b["input"]),
                        _ => String::new(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Some("user") => v["message"]["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_result")
                    .map(|b| {
                        let text = match &b["content"] {
                            Value::String(s) => s.clone(),
                            Value::Array(parts) => parts
                                .iter()
                                .filter_map(|p| p["text"].as_str())
                                .collect::<Vec<_>>()
                                .join("\n"),
                            _ => String::new(),
                        };
                        let status = if b["is_error"] == true { "error" } else { "ok" };
                        result(status, &text)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Some("result") => {
            let mut out = String::new();
            if v["is_error"] == true {
                out.push_str(&said(
                    "error",
                    v["result"].as_str().unwrap_or("the run failed"),
                ));
            }
            out.push_str(&usage(
                &v["usage"]["input_tokens"],
                &v["usage"]["output_tokens"],
                v["total_cost_usd"].as_f64(),
            ));
            out
        }
        _ => String::new(),
    }
}

fn codex(v: &Value) -> String {
    let item = &v["item"];
    match (v["type"].as_str(), item["type"].as_str()) {
        (Some("item.completed"), Some("agent_message")) => {
            said("assistant", item["text"].as_str().unwrap_or_default())
        }
        (Some("item.completed"), Some("command_execution")) => {
            let status = match item["exit_code"].as_i64() {
                Some(0) => "ok".to_string(),
                Some(code) => format!("exit {code}"),
                None => item["status"].as_str().unwrap_or("ended").to_string(),
            };
            format!(
                "{}{}",
                call("shell", &serde_json::json!({ "command": item["command"] })),
                result(
                    &status,
                    item["aggregated_output"].as_str().unwrap_or_default()
                )
            )
        }
        (Some("item.completed"), Some("error")) | (Some("error"), _) => said(
            "error",
            item["message"]
                .as_str()
                .or_else(|| v["message"].as_str())
                .unwrap_or("an error"),
        ),
        (Some("turn.failed"), _) => said(
            "error",
            v["error"]["message"].as_str().unwrap_or("the turn failed"),
        ),
        (Some("turn.completed"), _) => usage(
            &v["usage"]["input_tokens"],
            &v["usage"]["output_tokens"],
            None,
        ),
        _ => String::new(),
    }
}

fn gemini(v: &Value) -> String {
    match v["type"].as_str() {
        Some("tool_use") => call(v["tool_name"].as_str().unwrap_or("tool"), &v["parameters"]),
        Some("tool_result") => {
            let status = v["status"].as_str().unwrap_or("ended");
            let status = if status == "success" { "ok" } else { status };
            let text = v["output"]
                .as_str()
                .or_else(|| v["error"]["message"].as_str())
                .unwrap_or_default();
            result(status, text)
        }
        Some("error") => said("error", v["message"].as_str().unwrap_or("an error")),
        Some("result") => {
            let mut out = String::new();
            if v["status"] != "success" {
                out.push_str(&said(
                    "error",
                    v["error"]["message"].as_str().unwrap_or("the run failed"),
                ));
            }
            out.push_str(&usage(
                &v["stats"]["input_tokens"],
                &v["stats"]["output_tokens"],
                None,
            ));
            out
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(kind: AgentKind, stream: &str) -> String {
        let mut t = Transcript::new(kind).unwrap();
        let mut out: String = stream.lines().map(|l| t.line(l)).collect();
        out.push_str(&t.finish());
        out
    }

    #[test]
    fn gemini_text_in_pieces_is_one_answer_and_a_failed_tool_says_so() {
        let stream = r#"{"type":"tool_use","tool_name":"run_shell_command","parameters":{"command":"go test ./..."}}
{"type":"tool_result","status":"error","output":"FAIL\nline 2\nline 3\nline 4\nline 5"}
{"type":"message","role":"assistant","content":"All ","delta":true}
{"type":"message","role":"assistant","content":"done.","delta":true}
{"type":"result","status":"success","stats":{"input_tokens":10,"output_tokens":2}}"#;
        assert_eq!(
            read(AgentKind::Gemini, stream),
            "tool run_shell_command: go test ./...\n  ⎿ error\n    FAIL\n    line 2\n    line 3\n    … 2 more lines\nassistant: All done.\ntokens: 10 in, 2 out\n"
        );
    }

    #[test]
    fn a_kind_without_a_stream_has_no_transcript() {
        assert!(Transcript::new(AgentKind::Command).is_none());
        assert!(Transcript::new(AgentKind::Openai).is_none());
    }
}
