//! Owns reading a CLI agent's run back from its stdout: the JSON event
//! stream of the `claude`, `codex` and `gemini` kinds gives the final
//! answer, the tokens and cost, and whether the agent reported failure
//! (docs/agents.md lists the events each kind is read for). `command`
//! agents print plain text, and HTTP agents' calls report the same
//! [`StreamReport`] by themselves (`super::http`).

use std::io::BufRead;
use std::path::Path;

use crate::model::AgentKind;

/// What an agent's stdout says about its run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StreamReport {
    /// The final answer, when the stream carries one.
    pub answer: Option<String>,
    /// The agent reported failure although it may have exited 0.
    pub failed: bool,
    /// What the agent said went wrong, when it said so in its stream.
    pub error: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

/// Lines longer than this are an error rather than a memory blow-up.
pub(crate) const MAX_LINE: usize = 16 << 20;

/// Reads a CLI kind's JSON event stream; `command` agents have none.
pub(crate) fn read_stream(kind: AgentKind, stdout: &Path) -> std::io::Result<StreamReport> {
    let mut report = StreamReport::default();
    if super::kind::cli(kind).is_none() {
        return Ok(report);
    }
    let file = std::fs::File::open(stdout)?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut gemini_text = String::new();
    loop {
        line.clear();
        let n =
            std::io::Read::take(&mut reader, MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if line.len() > MAX_LINE {
            return Err(std::io::Error::other(format!(
                "a line of {} is longer than 16 MiB",
                stdout.display()
            )));
        }
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&line) else {
            continue;
        };
        let kind_of = event.get("type").and_then(|t| t.as_str()).unwrap_or("");
        match kind {
            AgentKind::Claude => claude_event(&event, kind_of, &mut report),
            AgentKind::Codex => codex_event(&event, kind_of, &mut report),
            _ => gemini_event(&event, kind_of, &mut report, &mut gemini_text),
        }
    }
    if kind == AgentKind::Gemini && !gemini_text.is_empty() {
        report.answer = Some(gemini_text);
    }
    Ok(report)
}

fn u64_at(v: &serde_json::Value, key: &str) -> Option<u64> {
    v.get(key).and_then(serde_json::Value::as_u64)
}

fn claude_event(event: &serde_json::Value, kind: &str, report: &mut StreamReport) {
    if kind != "result" {
        return;
    }
    report.answer = event
        .get("result")
        .and_then(|r| r.as_str())
        .map(str::to_string);
    report.failed = event.get("is_error").and_then(serde_json::Value::as_bool) == Some(true);
    // A failed run's `result` is the API error (its `subtype` still says "success").
    report.error = report.failed.then(|| report.answer.clone()).flatten();
    report.cost_usd = event
        .get("total_cost_usd")
        .and_then(serde_json::Value::as_f64);
    if let Some(why) = report.cost_usd.and_then(super::usage::cost_error) {
        // Not counted: the run is an agent error, and says why.
        report.cost_usd = None;
        report.failed = true;
        report.error = Some(why);
    }
    if let Some(u) = event.get("usage") {
        let input = super::usage::sum_tokens(
            [
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            ]
            .iter()
            .filter_map(|k| u64_at(u, k)),
        );
        report.input_tokens = Some(input);
        report.output_tokens = u64_at(u, "output_tokens");
    }
}

fn codex_event(event: &serde_json::Value, kind: &str, report: &mut StreamReport) {
    match kind {
        "item.completed" => {
            let item = event.get("item");
            if item.and_then(|i| i.get("type")).and_then(|t| t.as_str()) == Some("agent_message") {
                report.answer = item
                    .and_then(|i| i.get("text"))
                    .and_then(|t| t.as_str())
                    .map(str::to_string);
            }
        }
        "turn.completed" => {
            if let Some(u) = event.get("usage") {
                report.input_tokens = Some(
                    report
                        .input_tokens
                        .unwrap_or(0)
                        .saturating_add(u64_at(u, "input_tokens").unwrap_or(0)),
                );
                report.output_tokens = Some(
                    report
                        .output_tokens
                        .unwrap_or(0)
                        .saturating_add(u64_at(u, "output_tokens").unwrap_or(0)),
                );
            }
        }
        // Top-level `error` lines are also retry notices: only `turn.failed` is fatal.
        "turn.failed" => {
            report.failed = true;
            report.error = event
                .pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_string);
        }
        _ => {}
    }
}

fn gemini_event(
    event: &serde_json::Value,
    kind: &str,
    report: &mut StreamReport,
    text: &mut String,
) {
    match kind {
        "tool_result" => text.clear(),
        "message" if event.get("role").and_then(|r| r.as_str()) == Some("assistant") => {
            if let Some(c) = event.get("content").and_then(|c| c.as_str()) {
                text.push_str(c);
            }
        }
        "result" => {
            report.failed = event.get("status").and_then(|s| s.as_str()) == Some("error");
            report.error = event
                .pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_string);
            if let Some(stats) = event.get("stats") {
                report.input_tokens = u64_at(stats, "input_tokens");
                report.output_tokens = u64_at(stats, "output_tokens");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: AgentKind, lines: &[&str]) -> StreamReport {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-stdout.txt");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        read_stream(kind, &path).unwrap()
    }

    #[test]
    fn claude_result_is_found_whatever_its_key_order() {
        // 2.1.332 puts `"type":"result"` near the end of the line.
        let r = parse(
            AgentKind::Claude,
            &[
                r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"s","tools":["Bash"]}"#,
                r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"I'll create the file."}]}}"#,
                r#"{"duration_api_ms":134,"stop_reason":"end_turn","total_cost_usd":0.0016,"usage":{"input_tokens":150,"cache_read_input_tokens":50,"output_tokens":40},"is_error":false,"num_turns":2,"subtype":"success","result":"FINAL: created the file DONE.","type":"result"}"#,
            ],
        );
        assert_eq!(r.answer.as_deref(), Some("FINAL: created the file DONE."));
        assert!(!r.failed);
        assert_eq!((r.input_tokens, r.output_tokens), (Some(200), Some(40)));
        assert_eq!(r.cost_usd, Some(0.0016));
        let failed = parse(
            AgentKind::Claude,
            &[
                r#"{"type":"result","subtype":"success","is_error":true,"terminal_reason":"api_error","result":"API Error: Request rejected (429)"}"#,
            ],
        );
        assert!(failed.failed, "is_error decides, not subtype");
        assert_eq!(
            failed.error.as_deref(),
            Some("API Error: Request rejected (429)")
        );
    }

    #[test]
    fn codex_answer_is_the_last_agent_message_and_turn_failed_is_failure() {
        let r = parse(
            AgentKind::Codex,
            &[
                r#"{"type":"thread.started","thread_id":"t"}"#,
                r#"{"type":"item.completed","item":{"id":"item_0","type":"command_execution","command":"bash -lc 'echo x > DONE'","exit_code":0}}"#,
                r#"{"type":"error","message":"Reconnecting... 1/5"}"#,
                r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"FINAL: created the file DONE."}}"#,
                r#"{"type":"turn.completed","usage":{"input_tokens":200,"cached_input_tokens":0,"output_tokens":40}}"#,
            ],
        );
        assert_eq!(r.answer.as_deref(), Some("FINAL: created the file DONE."));
        assert!(!r.failed, "a retry notice is not a failure");
        assert_eq!((r.input_tokens, r.output_tokens), (Some(200), Some(40)));
        let failed = parse(
            AgentKind::Codex,
            &[r#"{"type":"turn.failed","error":{"message":"boom"}}"#],
        );
        assert!(failed.failed);
        assert_eq!(failed.error.as_deref(), Some("boom"));
    }

    #[test]
    fn gemini_answer_is_the_assistant_text_after_the_last_tool_result() {
        let r = parse(
            AgentKind::Gemini,
            &[
                r#"{"type":"init","session_id":"s","model":"auto"}"#,
                r#"{"type":"message","role":"user","content":"create the file DONE"}"#,
                r#"{"type":"message","role":"assistant","content":"I'll create the file.","delta":true}"#,
                r#"{"type":"tool_use","tool_name":"run_shell_command","tool_id":"x","parameters":{"command":"echo x > DONE"}}"#,
                r#"{"type":"tool_result","tool_id":"x","status":"success","output":""}"#,
                r#"{"type":"message","role":"assistant","content":"FINAL: created ","delta":true}"#,
                r#"{"type":"message","role":"assistant","content":"the file DONE.","delta":true}"#,
                r#"{"type":"result","status":"success","stats":{"total_tokens":360,"input_tokens":300,"output_tokens":60}}"#,
            ],
        );
        assert_eq!(r.answer.as_deref(), Some("FINAL: created the file DONE."));
        assert_eq!((r.input_tokens, r.output_tokens), (Some(300), Some(60)));
        assert!(!r.failed);
        let failed = parse(
            AgentKind::Gemini,
            &[
                r#"{"type":"result","status":"error","error":{"type":"unknown","message":"[API Error: 500]"},"stats":{"input_tokens":0,"output_tokens":0}}"#,
            ],
        );
        assert!(failed.failed);
        assert_eq!(failed.error.as_deref(), Some("[API Error: 500]"));
    }
}
