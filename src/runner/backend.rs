//! Owns what differs between agent kinds: the argv each process kind starts
//! with, the API keys it may see, and how its final answer, usage and
//! failure are read back from its stdout (a JSON event stream for the CLI
//! kinds, plain text for `command`), and which of output.md, the stream's
//! answer and stdout is the final answer. HTTP kinds run no process: their
//! calls are `super::http`'s.

use std::fs::File;
use std::io::{BufRead, Read};
use std::path::Path;

use super::outcome::cap;

use crate::model::AgentKind;

/// The argv of a process agent. `command` runs what it names; the CLI kinds
/// get their non-interactive preset, `args` replacing it, `extra_args`
/// appended, `model` passed with the CLI's own flag. HTTP kinds have none
/// (validation refuses `command`, `args` and `extra_args` on them).
pub fn argv(
    kind: AgentKind,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    extra_args: Vec<String>,
    model: Option<&str>,
) -> Result<Vec<String>, String> {
    let mut full: Vec<String> = match kind {
        AgentKind::Command => {
            let cmd = command
                .filter(|c| !c.is_empty())
                .ok_or("a `command` agent needs `command = [\"program\", ..]`")?;
            let mut cmd = cmd;
            if let Some(args) = args {
                cmd.extend(args);
            }
            cmd
        }
        AgentKind::Claude | AgentKind::Codex | AgentKind::Gemini => {
            let (program, preset, model_flag): (&str, &[&str], &str) = match kind {
                AgentKind::Claude => (
                    "claude",
                    &[
                        "-p",
                        "--output-format",
                        "stream-json",
                        "--verbose",
                        "--dangerously-skip-permissions",
                    ],
                    "--model",
                ),
                AgentKind::Codex => (
                    "codex",
                    &[
                        "exec",
                        "--json",
                        "--skip-git-repo-check",
                        "--dangerously-bypass-approvals-and-sandbox",
                    ],
                    "--model",
                ),
                _ => (
                    "gemini",
                    &["--output-format", "stream-json", "--yolo"],
                    "--model",
                ),
            };
            // `command` replaces the program (`["npx", "claude"]`), keeping the preset.
            let mut cli = command
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| vec![program.to_string()]);
            match args {
                Some(args) => cli.extend(args),
                None => cli.extend(preset.iter().map(|s| (*s).to_string())),
            }
            // A `model` written in the workflow is passed even when `args`
            // replace the preset: dropping it silently would run another model.
            if let Some(m) = model {
                cli.push(model_flag.to_string());
                cli.push(m.to_string());
            }
            cli
        }
        AgentKind::Openai | AgentKind::Anthropic => return Ok(Vec::new()),
    };
    full.extend(extra_args);
    Ok(full)
}

/// Variables a CLI kind needs to run unattended. They override conductor's
/// inherited environment; the workflow's `env` overrides them.
pub fn preset_env(kind: AgentKind) -> Vec<(&'static str, &'static str)> {
    match kind {
        // As root, claude refuses `--dangerously-skip-permissions` unless
        // it is told it runs in a sandbox (CI machines and containers run
        // as root).
        AgentKind::Claude if rustix::process::getuid().is_root() => vec![("IS_SANDBOX", "1")],
        // In a folder gemini was never told to trust it silently drops
        // `--yolo`, and an unattended run cannot answer its prompts.
        AgentKind::Gemini => vec![("GEMINI_CLI_TRUST_WORKSPACE", "true")],
        _ => Vec::new(),
    }
}

/// The vendor key variables an agent of this kind may see.
pub fn vendor_keys(kind: AgentKind) -> &'static [&'static str] {
    match kind {
        AgentKind::Claude | AgentKind::Anthropic => &["ANTHROPIC_API_KEY"],
        AgentKind::Codex | AgentKind::Openai => &["OPENAI_API_KEY"],
        AgentKind::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        AgentKind::Command => &[],
    }
}

/// What an agent's stdout says about its run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamReport {
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

/// Lines longer than this are an error rather than a memory blow-up (DESIGN §9.10).
pub const MAX_LINE: usize = 16 << 20;

/// Reads a CLI kind's JSON event stream; `command` agents have none.
pub fn read_stream(kind: AgentKind, stdout: &Path) -> std::io::Result<StreamReport> {
    let mut report = StreamReport::default();
    if !matches!(
        kind,
        AgentKind::Claude | AgentKind::Codex | AgentKind::Gemini
    ) {
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
    if let Some(u) = event.get("usage") {
        let input = [
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ]
        .iter()
        .filter_map(|k| u64_at(u, k))
        .sum();
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
                report.input_tokens =
                    Some(report.input_tokens.unwrap_or(0) + u64_at(u, "input_tokens").unwrap_or(0));
                report.output_tokens = Some(
                    report.output_tokens.unwrap_or(0) + u64_at(u, "output_tokens").unwrap_or(0),
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

/// output.md written by the agent wins; else the stream's answer; else stdout.
/// output.md is made to exist either way, as the seed guarantees.
pub fn final_answer(report: &StreamReport, output: &Path, stdout: &Path) -> String {
    if !output.exists() {
        let written = match &report.answer {
            Some(a) => std::fs::write(output, a),
            None => std::fs::copy(stdout, output).map(|_| ()),
        };
        if let Err(e) = written {
            tracing::warn!("cannot write {}: {e}", output.display());
            return cap(report.answer.clone().unwrap_or_default());
        }
    }
    read_capped(output)
}

/// The first [`super::outcome::TEMPLATE_TEXT_CAP`] bytes of a file (and a marker past them).
pub fn read_capped(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f
            .take(super::outcome::TEMPLATE_TEXT_CAP as u64 + 4)
            .read_to_end(&mut bytes);
    }
    cap(String::from_utf8_lossy(&bytes).into_owned())
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

    #[test]
    fn claude_is_told_it_runs_in_a_sandbox_only_as_root_and_gemini_trusts_its_folder() {
        let root = rustix::process::getuid().is_root();
        assert_eq!(
            preset_env(AgentKind::Claude).contains(&("IS_SANDBOX", "1")),
            root
        );
        assert_eq!(
            preset_env(AgentKind::Gemini),
            [("GEMINI_CLI_TRUST_WORKSPACE", "true")]
        );
        assert!(preset_env(AgentKind::Codex).is_empty());
        assert!(preset_env(AgentKind::Command).is_empty());
    }

    #[test]
    fn presets_take_model_args_and_extra_args() {
        let codex = argv(
            AgentKind::Codex,
            None,
            None,
            vec!["--x".into()],
            Some("gpt-5.5"),
        )
        .unwrap();
        assert_eq!(
            codex,
            [
                "codex",
                "exec",
                "--json",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                "--model",
                "gpt-5.5",
                "--x"
            ]
        );
        // `command` names the program; `args` replaces the preset, and the model is still passed.
        let claude = argv(
            AgentKind::Claude,
            Some(vec!["npx".into(), "claude".into()]),
            Some(vec!["-p".into(), "--verbose".into()]),
            Vec::new(),
            Some("sonnet"),
        )
        .unwrap();
        assert_eq!(
            claude,
            ["npx", "claude", "-p", "--verbose", "--model", "sonnet"]
        );
        let http = argv(AgentKind::Openai, None, None, Vec::new(), Some("m")).unwrap();
        assert!(http.is_empty(), "an HTTP agent runs no program: {http:?}");
    }
}
