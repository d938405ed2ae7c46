//! Owns `conductor __fake-agent`, the hidden agent the tests run instead of a
//! real AI: it reads its prompt on stdin like every process agent, then does
//! what its flags say (sleep, fail, ignore SIGTERM, leave a grandchild, create
//! DONE after N calls, print a promise, JSON, or a real CLI's stream-json), so
//! that every stop condition and limit can be tested with real processes and
//! real signals, the same on every machine.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the fake agent does, in this order.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FakeAgent {
    /// Sleep this long (such as `500ms` or `2s`) before answering.
    #[arg(long, value_parser = parse_duration)]
    pub sleep: Option<Duration>,
    /// Exit with this code.
    #[arg(long = "exit", default_value_t = 0)]
    pub exit_code: u8,
    /// Keep running on SIGTERM (saying so on stderr), so only SIGKILL stops it.
    #[arg(long)]
    pub ignore_sigterm: bool,
    /// Start a grandchild that sleeps this long, and write its pid to `--pid-file`.
    #[arg(long, value_parser = parse_duration)]
    pub grandchild: Option<Duration>,
    /// Where to write the pids (own, then grandchild's), one per line.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Create DONE in the task folder on the Nth call (counted in the task folder).
    #[arg(long, value_name = "N")]
    pub done_after: Option<u32>,
    #[arg(
        long,
        help = "The task folder [default: $JRUN_TASK_FOLDER, else the current directory]"
    )]
    pub task_folder: Option<PathBuf>,
    /// The final answer [default: "fake agent answered call N"].
    #[arg(long)]
    pub say: Option<String>,
    /// Also print this promise text.
    #[arg(long)]
    pub promise: Option<String>,
    /// Print this JSON text as the answer.
    #[arg(long)]
    pub json: Option<String>,
    /// Print the answer as the named CLI's JSON event stream.
    #[arg(long, value_parser = ["claude", "codex", "gemini"])]
    pub stream: Option<String>,
    /// Write this to stderr.
    #[arg(long)]
    pub stderr: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, crate::model::DurationError> {
    crate::model::Duration::parse_flag(text)
}

/// Runs the fake agent; returns its exit code.
pub(super) fn run(args: &FakeAgent) -> u8 {
    match act(args) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "fake agent: {e}");
            111
        }
    }
}

fn act(args: &FakeAgent) -> std::io::Result<u8> {
    // Like a real agent, read the whole prompt first.
    let mut prompt = String::new();
    let _ = std::io::stdin().read_to_string(&mut prompt);
    if args.ignore_sigterm {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM])?;
        std::thread::spawn(move || {
            for _ in signals.forever() {
                let _ = writeln!(std::io::stderr(), "fake agent: ignoring SIGTERM");
            }
        });
        // Tests wait for this line before they signal.
        let _ = writeln!(
            std::io::stderr(),
            "fake agent: SIGTERM is ignored from now on"
        );
    }
    let mut pids = vec![std::process::id().to_string()];
    if let Some(life) = args.grandchild {
        let me = std::env::current_exe()?;
        let child = std::process::Command::new(me)
            .args([
                "__fake-agent",
                "--sleep",
                &format!("{}ms", life.as_millis()),
            ])
            .stdin(std::process::Stdio::null())
            .spawn()?;
        pids.push(child.id().to_string());
    }
    if let Some(file) = &args.pid_file {
        std::fs::write(file, pids.join("\n") + "\n")?;
    }
    let folder = args
        .task_folder
        .clone()
        .or_else(|| std::env::var_os("JRUN_TASK_FOLDER").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    let call = count_call(&folder)?;
    if args.done_after.is_some_and(|n| call >= n) {
        std::fs::write(crate::store::layout::TaskDir::at(folder.clone()).done(), "")?;
    }
    if let Some(text) = &args.stderr {
        let _ = writeln!(std::io::stderr(), "{text}");
    }
    if let Some(d) = args.sleep {
        std::thread::sleep(d);
    }
    let answer = args
        .say
        .clone()
        .unwrap_or_else(|| format!("fake agent answered call {call}"));
    let answer = match &args.promise {
        Some(p) => format!("{answer}\n{p}"),
        None => answer,
    };
    let mut out = std::io::stdout().lock();
    match (&args.json, args.stream.as_deref()) {
        (Some(json), _) => writeln!(out, "{json}")?,
        (None, Some(cli)) => {
            for line in stream(cli, &answer, args.exit_code != 0) {
                writeln!(out, "{line}")?;
            }
        }
        (None, None) => writeln!(out, "{answer}")?,
    }
    out.flush()?;
    Ok(args.exit_code)
}

/// Counts this call in `<folder>/fake-agent-calls`; returns its number, from 1.
fn count_call(folder: &Path) -> std::io::Result<u32> {
    std::fs::create_dir_all(folder)?;
    let file = folder.join("fake-agent-calls");
    let before: u32 = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    std::fs::write(&file, format!("{}\n", before + 1))?;
    Ok(before + 1)
}

/// The event lines the real CLI prints for one turn that answers `text`
/// (docs/agents.md), with usage and, for claude, cost.
fn stream(cli: &str, text: &str, failed: bool) -> Vec<String> {
    let s = |v: serde_json::Value| v.to_string();
    match cli {
        "claude" => vec![
            s(
                serde_json::json!({"type": "system", "subtype": "init", "session_id": "fake", "model": "fake-model", "claude_code_version": "fake"}),
            ),
            s(
                serde_json::json!({"type": "assistant", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "content": [{"type": "text", "text": text}], "stop_reason": null}, "session_id": "fake"}),
            ),
            s(
                serde_json::json!({"type": "result", "subtype": if failed { "error_during_execution" } else { "success" }, "is_error": failed, "result": text, "total_cost_usd": 0.0016, "usage": {"input_tokens": 200, "output_tokens": 40}, "num_turns": 1, "session_id": "fake"}),
            ),
        ],
        "codex" => {
            let mut lines = vec![
                s(serde_json::json!({"type": "thread.started", "thread_id": "fake"})),
                s(serde_json::json!({"type": "turn.started"})),
                s(
                    serde_json::json!({"type": "item.completed", "item": {"id": "item_0", "type": "agent_message", "text": text}}),
                ),
            ];
            lines.push(if failed {
                s(serde_json::json!({"type": "turn.failed", "error": {"message": "fake failure"}}))
            } else {
                s(serde_json::json!({"type": "turn.completed", "usage": {"input_tokens": 200, "cached_input_tokens": 0, "output_tokens": 40}}))
            });
            lines
        }
        _ => vec![
            s(serde_json::json!({"type": "init", "session_id": "fake", "model": "fake-model"})),
            s(
                serde_json::json!({"type": "message", "role": "assistant", "content": text, "delta": true}),
            ),
            s(
                serde_json::json!({"type": "result", "status": if failed { "error" } else { "success" }, "stats": {"total_tokens": 240, "input_tokens": 200, "output_tokens": 40}}),
            ),
        ],
    }
}
