//! The real agent CLIs (`claude`, `codex`, `gemini`) driven end to end
//! through `conductor apply`, each pointed at the scripted model server
//! with nothing but workflow settings and the environment a user would
//! set. `HOME`, `CODEX_HOME` and `TMPDIR` are fresh per test: each CLI keeps
//! session state there.
//!
//! The CLIs come from `.ci/install-agent-clis` (found on PATH, or in that
//! script's cache folder). Most machines lack them, so these tests are
//! ignored by a plain `cargo test` (and reported as ignored, never as
//! passed); `cargo test -- --include-ignored`, as CI runs it, runs them, and
//! then a missing CLI fails its tests with how to install it.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::apply_support::{Flow, instance, run_info, state};
use crate::model_server::{INPUT_TOKENS, ModelServer, OUTPUT_TOKENS, Turn};

/// What the scripted model answers last.
const FINAL: &str = "FINAL: created the file DONE.";
/// The scripted tool call: DONE in the task folder, and a JRUN_* variable
/// written down so the test sees that the CLI's shell tool passed it on.
const TOOL: &str = r#"touch "$JRUN_TASK_FOLDER/DONE" && printf %s "$JRUN_TASK_ID" > "$JRUN_TASK_FOLDER/seen-task-id""#;
/// The API key, set in conductor's environment as a user would; distinct
/// enough that redaction of it never touches other text.
const KEY: &str = "sk-scripted-7f3a9c1e";

/// The three CLIs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cli {
    Claude,
    Codex,
    Gemini,
}

impl Cli {
    fn name(self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Codex => "codex",
            Self::Gemini => "gemini",
        }
    }

    fn key_var(self) -> &'static str {
        match self {
            Self::Claude => "ANTHROPIC_API_KEY",
            Self::Codex => "OPENAI_API_KEY",
            Self::Gemini => "GEMINI_API_KEY",
        }
    }

    /// The `[agents.ai]` table pointing this CLI at `url`, and `stop` for the node.
    fn workflow(self, url: &str, stop: &str) -> String {
        let agent = match self {
            // Two retries instead of ten keep a failing server's test short;
            // the traffic switch stops lookups of the vendor's host.
            Self::Claude => format!(
                r#"kind = "claude"
env = {{ ANTHROPIC_BASE_URL = "{url}", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = "1", CLAUDE_CODE_MAX_RETRIES = "2" }}"#
            ),
            // A model provider of our own, given with `-c` (no config file),
            // reading its key from OPENAI_API_KEY; plugins and analytics off
            // stop lookups of outside hosts. A known model slug avoids a
            // "model metadata not found" warning item.
            Self::Codex => format!(
                r#"kind = "codex"
model = "gpt-5.5"
extra_args = [
    "-c", "model_provider=\"scripted\"",
    "-c", "model_providers.scripted={{ name = \"Scripted\", base_url = \"{url}/v1\", wire_api = \"responses\", env_key = \"OPENAI_API_KEY\", request_max_retries = 1, stream_max_retries = 1 }}",
    "-c", "features.plugins=false",
    "-c", "analytics.enabled=false",
]"#
            ),
            // A model named explicitly skips the CLI's router call.
            Self::Gemini => format!(
                r#"kind = "gemini"
model = "gemini-2.5-flash"
env = {{ GOOGLE_GEMINI_BASE_URL = "{url}" }}"#
            ),
        };
        format!(
            r#"version = 1
name = "real"

[agents.ai]
{agent}

[nodes.n]
agent = "ai"
prompt = "Create the file DONE in your task folder, then say what you did."
stop = {stop}
"#
        )
    }
}

/// The folder holding the CLI; a test asked to run without it fails.
fn find(cli: Cli) -> PathBuf {
    let name = cli.name();
    let cache = std::env::var_os("CONDUCTOR_AGENT_CLIS_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/conductor-agent-clis"))
        })
        .map(|d| d.join("node_modules/.bin"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(cache)
        .find(|d| d.join(name).is_file())
        .unwrap_or_else(|| {
            panic!(
                "the `{name}` CLI is not installed: run .ci/install-agent-clis \
                 (it needs Node 20 and npm); it installs the pinned claude, codex \
                 and gemini into ~/.cache/conductor-agent-clis (or \
                 $CONDUCTOR_AGENT_CLIS_DIR), where this test finds them"
            )
        })
}

/// A fresh `HOME` (with `CODEX_HOME` and `TMPDIR` inside) for one test.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new(cli: Cli, gemini_max_attempts: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in [".codex", "tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        if cli == Cli::Gemini {
            // With a base URL set, gemini picks "gateway" auth, which its
            // headless mode rejects (exit 41): API-key auth must be chosen
            // in settings. Statistics off stops the one outside lookup.
            let mut general = serde_json::json!({
                "enableAutoUpdate": false,
                "enableAutoUpdateNotification": false,
            });
            if let Some(n) = gemini_max_attempts {
                general["maxAttempts"] = n.into();
            }
            let settings = serde_json::json!({
                "security": {"auth": {"selectedType": "gemini-api-key"}},
                "privacy": {"usageStatisticsEnabled": false},
                "telemetry": {"enabled": false},
                "general": general,
            });
            std::fs::create_dir_all(dir.path().join(".gemini")).unwrap();
            std::fs::write(
                dir.path().join(".gemini/settings.json"),
                settings.to_string(),
            )
            .unwrap();
        }
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// `conductor apply --json` with the CLI's folder on PATH, the key in the
/// environment, and `HOME`, `CODEX_HOME` and `TMPDIR` isolated.
fn apply(flow: &Flow, cli: Cli, bin: &Path, home: &Home) -> (Output, serde_json::Value) {
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut cmd = flow.command(&[]);
    for k in [
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
    ] {
        cmd.env_remove(k);
    }
    let out = cmd
        .env("PATH", path)
        .env("HOME", home.path())
        .env("CODEX_HOME", home.path().join(".codex"))
        .env("TMPDIR", home.path().join("tmp"))
        .env(cli.key_var(), KEY)
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, summary)
}

/// The single run folder of instance `n`.
fn run_dir(summary: &serde_json::Value) -> PathBuf {
    let task = PathBuf::from(instance(summary, "n")["task_dir"].as_str().unwrap());
    let runs: Vec<PathBuf> = std::fs::read_dir(task.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

fn explain(out: &Output, flow: &Flow) -> String {
    let files: Vec<String> = flow
        .files()
        .into_iter()
        .filter(|(p, _)| {
            p.file_name()
                .is_some_and(|n| n == "agent-stderr.txt" || n == "agent-stdout.txt")
        })
        .map(|(p, t)| format!("--- {}\n{}", p.display(), tail(&t, 4000)))
        .collect();
    format!(
        "exit {:?}\n--- conductor stdout\n{}\n--- conductor stderr\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        files.join("\n")
    )
}

fn tail(t: &str, n: usize) -> &str {
    let mut at = t.len().saturating_sub(n);
    while !t.is_char_boundary(at) {
        at += 1;
    }
    &t[at..]
}

/// The happy path: one tool call that creates DONE, then the final answer.
fn creates_done(cli: Cli) {
    let bin = find(cli);
    let server = ModelServer::start([Turn::shell(TOOL), Turn::text(FINAL)]);
    let flow = Flow::new(&cli.workflow(&server.url(), r#"{ timeout = "120s" }"#));
    let home = Home::new(cli, None);
    let (out, summary) = apply(&flow, cli, &bin, &home);
    let why = explain(&out, &flow);
    assert_eq!(out.status.code(), Some(0), "{why}");
    assert_eq!(
        state(&summary, "n"),
        ("done".into(), "done_file".into(), 1),
        "{why}"
    );

    // The CLI's shell tool ran in the agent's environment.
    let task = PathBuf::from(instance(&summary, "n")["task_dir"].as_str().unwrap());
    assert!(task.join("DONE").is_file(), "{why}");
    assert_eq!(
        std::fs::read_to_string(task.join("seen-task-id")).unwrap(),
        instance(&summary, "n")["task_id"].as_str().unwrap(),
        "JRUN_TASK_ID reached the shell tool"
    );

    // The answer, the stream and the usage are in the run folder.
    let run = run_dir(&summary);
    assert_eq!(
        std::fs::read_to_string(run.join("output.md"))
            .unwrap()
            .trim(),
        FINAL
    );
    let stream = std::fs::read_to_string(run.join("agent-stdout.txt")).unwrap();
    assert!(
        stream.lines().count() > 2 && stream.contains("seen-task-id"),
        "the agent's event stream, tool call included, is kept: {stream}"
    );
    // The streams the transcript tests read (tests/fixtures/streams) are
    // recorded from here: CONDUCTOR_RECORD_STREAMS=DIR.
    if let Some(dir) = std::env::var_os("CONDUCTOR_RECORD_STREAMS") {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{}.jsonl", cli.name())),
            &stream,
        )
        .unwrap();
    }
    // `conductor logs` reads it as a transcript: the tool call with its
    // command, and the answer.
    let logs = std::process::Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(flow.path())
        .args(["logs", "n", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.status.success(), "{transcript}");
    assert!(transcript.contains("seen-task-id"), "{transcript}");
    assert!(transcript.contains(FINAL), "{transcript}");
    assert!(
        !transcript.contains("{\"type\""),
        "raw JSON in the transcript: {transcript}"
    );
    let info = run_info(&run);
    assert_eq!(info["status"], "completed", "{info:#}");
    assert_eq!(info["exit_code"], 0);
    // Two model calls, each reporting the scripted usage.
    assert_eq!(server.model_calls().len(), 2, "{:#?}", server.requests());
    assert_eq!(info["input_tokens"], 2 * INPUT_TOKENS, "{info:#}");
    assert_eq!(info["output_tokens"], 2 * OUTPUT_TOKENS, "{info:#}");
    let usage = &instance(&summary, "n")["usage"];
    assert_eq!(usage["input_tokens"], 2 * INPUT_TOKENS, "{summary:#}");
    assert_eq!(usage["output_tokens"], 2 * OUTPUT_TOKENS, "{summary:#}");
    if cli == Cli::Claude {
        // Claude prices its own usage; the others report tokens only.
        let cost = info["cost_usd"].as_f64().unwrap_or_default();
        assert!(cost > 0.0, "claude reports a cost: {info:#}");
        assert_eq!(usage["cost_usd"].as_f64(), Some(cost), "{summary:#}");
    }

    // The second call carried the tool's result back to the model.
    let second = server.model_calls()[1].body.to_string();
    let result_marker = match cli {
        Cli::Claude => "tool_result",
        Cli::Codex => "function_call_output",
        Cli::Gemini => "functionResponse",
    };
    assert!(second.contains(result_marker), "{second}");
    // The key reached the CLI and nothing conductor wrote holds it.
    let auth = server.model_calls()[0].clone();
    let sent = [
        auth.header("x-api-key"),
        auth.header("authorization"),
        auth.header("x-goog-api-key"),
    ];
    assert!(
        sent.iter().flatten().any(|v| v.contains(KEY)),
        "{:?}",
        auth.headers
    );
    for (p, text) in flow.files() {
        assert!(!text.contains(KEY), "{} holds the API key", p.display());
    }
}

/// The first stream is cut after one event: the CLI retries on its own
/// (claude with a non-streaming call, codex by reconnecting, gemini after a
/// pause), conductor adds nothing, and the answer is whole. The cut comes
/// before the tool call because gemini takes a stream cut right after a
/// tool result for a complete (truncated) answer and does not retry.
fn survives_a_cut_stream(cli: Cli) {
    let bin = find(cli);
    let server = ModelServer::start([Turn::Cut, Turn::shell(TOOL), Turn::text(FINAL)]);
    let flow = Flow::new(&cli.workflow(&server.url(), r#"{ timeout = "120s" }"#));
    let home = Home::new(cli, None);
    let (out, summary) = apply(&flow, cli, &bin, &home);
    let why = explain(&out, &flow);
    assert_eq!(out.status.code(), Some(0), "{why}");
    assert_eq!(
        state(&summary, "n"),
        ("done".into(), "done_file".into(), 1),
        "{why}"
    );
    let actions: Vec<String> = server.model_calls().into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["cut", "shell", "text"], "{why}");
    // Gemini leaves the cut stream's partial text in its output, before the
    // tool call; the answer is only what follows the last tool result.
    let run = run_dir(&summary);
    assert_eq!(
        std::fs::read_to_string(run.join("output.md"))
            .unwrap()
            .trim(),
        FINAL,
        "{why}"
    );
}

/// A server that always fails: the CLI gives up after its (turned down)
/// retries and the node fails instead of hanging, with the CLI's own
/// account of the error (which holds `says`) in the run's record.
fn fails_with_server(cli: Cli, failure: Turn, says: &str) {
    let bin = find(cli);
    let server = ModelServer::start([failure]);
    let flow =
        Flow::new(&cli.workflow(&server.url(), r#"{ timeout = "120s", max_iterations = 1 }"#));
    let home = Home::new(cli, Some(2));
    let (out, summary) = apply(&flow, cli, &bin, &home);
    let why = explain(&out, &flow);
    assert_eq!(out.status.code(), Some(1), "{why}");
    assert_eq!(
        state(&summary, "n"),
        ("failed".into(), "max_iterations".into(), 1),
        "{why}"
    );
    let run = run_dir(&summary);
    let info = run_info(&run);
    assert_eq!(info["status"], "failed", "{info:#}");
    assert_eq!(info["stop_reason"], "agent_error", "{info:#}");
    assert_ne!(info["exit_code"], 0, "{info:#}");
    let error = info["error_summary"].as_str().unwrap_or_default();
    assert!(error.contains(says), "{info:#}");
    // Retries were the CLI's own, and bounded: its first call plus the
    // retries allowed above, conductor adding none.
    let calls = server.model_calls().len();
    let most = match cli {
        Cli::Claude => 3, // CLAUDE_CODE_MAX_RETRIES=2
        Cli::Codex => 4,  // (request_max_retries + 1) x (stream_max_retries + 1)
        Cli::Gemini => 2, // general.maxAttempts = 2
    };
    assert!((2..=most).contains(&calls), "{calls} calls: {why}");
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn claude_runs_the_scripted_tool_call_and_reports_usage_and_cost() {
    creates_done(Cli::Claude);
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn codex_runs_the_scripted_tool_call_and_reports_usage() {
    creates_done(Cli::Codex);
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn gemini_runs_the_scripted_tool_call_and_reports_usage() {
    creates_done(Cli::Gemini);
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn claude_retries_a_cut_stream_by_itself() {
    survives_a_cut_stream(Cli::Claude);
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn codex_retries_a_cut_stream_by_itself() {
    survives_a_cut_stream(Cli::Codex);
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn gemini_retries_a_cut_stream_by_itself() {
    survives_a_cut_stream(Cli::Gemini);
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn claude_fails_the_node_when_the_server_always_answers_429() {
    fails_with_server(
        Cli::Claude,
        Turn::Error {
            status: 429,
            retry_after: Some("0".into()),
        },
        "scripted failure 429",
    );
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn codex_fails_the_node_when_the_server_always_answers_429() {
    fails_with_server(
        Cli::Codex,
        Turn::Error {
            status: 429,
            retry_after: Some("1".into()),
        },
        "429",
    );
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn gemini_fails_the_node_when_the_server_always_answers_500() {
    fails_with_server(Cli::Gemini, Turn::error(500), "scripted failure 500");
}

/// The CLI's shell tool starts a process in a session of its own (as a
/// user's `npm run dev &` or a daemon would), then the model stalls: the
/// node's timeout ends the iteration, and nothing the tool started is left
/// (docs/security.md, "Containment").
fn contains_what_its_tool_started(cli: Cli) {
    const ESCAPE: &str = r#"setsid sh -c 'echo $$ > "$JRUN_TASK_FOLDER/escaped.pid"; exec sleep 600' </dev/null >/dev/null 2>&1 & sleep 1; echo started"#;
    let bin = find(cli);
    let server = ModelServer::start([Turn::shell(ESCAPE), Turn::Stall]);
    let flow =
        Flow::new(&cli.workflow(&server.url(), r#"{ timeout = "20s", max_iterations = 1 }"#));
    let home = Home::new(cli, None);
    let (out, summary) = apply(&flow, cli, &bin, &home);
    let why = explain(&out, &flow);
    assert_eq!(out.status.code(), Some(1), "{why}");
    assert_eq!(
        state(&summary, "n"),
        ("failed".into(), "timeout".into(), 1),
        "{why}"
    );
    let task = PathBuf::from(instance(&summary, "n")["task_dir"].as_str().unwrap());
    let pid = std::fs::read_to_string(task.join("escaped.pid"))
        .unwrap_or_else(|e| panic!("the tool did not start its process ({e}): {why}"));
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("sleep"),
        "the tool's process {} outlived the apply: {why}",
        pid.trim()
    );
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn claude_leaves_nothing_its_tool_started_in_another_session() {
    contains_what_its_tool_started(Cli::Claude);
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn codex_leaves_nothing_its_tool_started_in_another_session() {
    contains_what_its_tool_started(Cli::Codex);
}

#[test]
#[ignore = "needs the real claude, codex and gemini CLIs (.ci/install-agent-clis)"]
fn gemini_leaves_nothing_its_tool_started_in_another_session() {
    contains_what_its_tool_started(Cli::Gemini);
}
