//! Owns reading what a CLI agent is doing from its JSON event stream, for
//! the live progress line: the latest tool call, said in a few words
//! (`Bash: npm test`). The event shapes (docs/agents.md):
//! claude's `assistant` events with `tool_use` blocks, codex's
//! `item.started` items, gemini's `tool_use` events.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use crate::model::AgentKind;

/// How much of the end of a stream is read to find the latest tool call.
const TAIL: u64 = 32 * 1024;
/// The longest description shown.
const WIDTH: usize = 60;

/// The tool call one stream line reports, if it reports one.
pub(crate) fn tool_call(kind: AgentKind, line: &str) -> Option<String> {
    if !line.trim_start().starts_with('{') {
        return None;
    }
    let v: Value = serde_json::from_str(line).ok()?;
    let (name, detail) = match kind {
        AgentKind::Claude if v["type"] == "assistant" => {
            let block = v["message"]["content"]
                .as_array()?
                .iter()
                .rev()
                .find(|b| b["type"] == "tool_use")?;
            (block["name"].as_str()?.to_string(), detail(&block["input"]))
        }
        AgentKind::Codex if v["type"] == "item.started" => {
            let item = &v["item"];
            let kind = item["type"].as_str()?;
            if kind == "command_execution" {
                (
                    "shell".to_string(),
                    item["command"].as_str().map(str::to_string),
                )
            } else {
                (kind.replace('_', " "), detail(item))
            }
        }
        AgentKind::Gemini if v["type"] == "tool_use" => (
            v["tool_name"].as_str()?.to_string(),
            detail(&v["parameters"]),
        ),
        _ => return None,
    };
    let text = match detail {
        Some(d) => format!(
            "{name}: {}",
            d.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
        None => name,
    };
    Some(text.chars().take(WIDTH).collect())
}

/// The argument that says most about a call: its command, else its file or
/// pattern, else its description.
pub(super) fn detail(input: &Value) -> Option<String> {
    [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "description",
    ]
    .iter()
    .find_map(|k| input[*k].as_str())
    .map(str::to_string)
}

/// The latest tool call in the stream file `path` (its last few KiB).
pub(crate) fn latest(kind: AgentKind, path: &Path) -> Option<String> {
    super::kind::cli(kind)?;
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    text.lines().rev().find_map(|l| tool_call(kind, l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_clis_tool_call_is_said_in_a_few_words() {
        let claude = r#"{"type":"assistant","message":{"id":"msg_4b23","content":[{"type":"tool_use","id":"toolu_33e4","name":"Bash","input":{"command":"echo scripted > DONE","description":"Create the DONE file"}}],"stop_reason":null}}"#;
        assert_eq!(
            tool_call(AgentKind::Claude, claude).as_deref(),
            Some("Bash: echo scripted > DONE")
        );
        let codex = r#"{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc 'echo scripted > DONE'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#;
        assert_eq!(
            tool_call(AgentKind::Codex, codex).as_deref(),
            Some("shell: /bin/bash -lc 'echo scripted > DONE'")
        );
        let gemini = r#"{"type":"tool_use","timestamp":"2026-11-25T11:11:17.464Z","tool_name":"run_shell_command","tool_id":"x","parameters":{"command":"echo scripted > DONE","description":"Create the DONE file"}}"#;
        assert_eq!(
            tool_call(AgentKind::Gemini, gemini).as_deref(),
            Some("run_shell_command: echo scripted > DONE")
        );
        let text = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"I'll create the file."}]}}"#;
        assert_eq!(tool_call(AgentKind::Claude, text), None);
        assert_eq!(tool_call(AgentKind::Command, claude), None);
    }

    #[test]
    fn the_latest_call_in_a_stream_file_is_found_and_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-stdout.txt");
        let long = "x ".repeat(100);
        let first =
            r#"{"type":"tool_use","tool_name":"read_file","parameters":{"file_path":"a.rs"}}"#;
        let second = format!(
            r#"{{"type":"tool_use","tool_name":"run_shell_command","parameters":{{"command":"{long}"}}}}"#
        );
        std::fs::write(&path, format!("{first}\n{second}\nnot json\n")).unwrap();
        let got = latest(AgentKind::Gemini, &path).unwrap();
        assert!(got.starts_with("run_shell_command: x x"), "{got}");
        assert_eq!(got.chars().count(), WIDTH);
    }
}
