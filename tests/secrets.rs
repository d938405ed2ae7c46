//! Secrets (docs/security.md, "Secrets"): an agent's key reaches that agent
//! and nothing else, and no byte conductor writes or prints holds it, even
//! when the agent prints it, writes it into `output.md`, or a `[success]`
//! command does.

use crate::test_builder::Test;

const KEY: &str = "sk-live-THIS-IS-SECRET-0123456789";

/// An agent that holds `MY_KEY` and prints it every way it can.
const LEAKY: &str = r#"version = 1
name = "t"
[agents.leaky]
kind = "command"
command = ["sh", "-c", """
printf 'out %s\n' "$MY_KEY"
printf 'err %s\n' "$MY_KEY" >&2
# Split across two writes, as a stream may be.
printf 'split %s' "${MY_KEY%????????}"; sleep 0.1; printf '%s end\n' "${MY_KEY#${MY_KEY%????????}}"
conductor bus post --type FACT --body "bus $MY_KEY" --meta "k=$MY_KEY" > /dev/null
printf 'answer %s\n' "$MY_KEY" > "$JRUN_RUN_FOLDER/output.md"
touch "$JRUN_TASK_FOLDER/DONE"
"""]
api_key_env = "MY_KEY"
[agents.reader]
kind = "command"
command = ["sh", "-c", "cat > seen.txt; touch \"$JRUN_TASK_FOLDER/DONE\""]
[nodes.n]
agent = "leaky"
prompt = "work"
[nodes.m]
needs = ["n"]
agent = "reader"
prompt = "upstream said: {{ needs.n.output }} ({{ needs.n.output[7:15] }})"
[success]
# It fails, so that its output is shown (folded under it).
commands = ["echo \"success saw $MY_KEY\"; exit 3"]
"#;

#[test]
fn a_key_an_agent_prints_is_in_no_file_and_on_no_screen() {
    let ran = Test::new()
        .workflow(LEAKY)
        .apply()
        .env("MY_KEY", KEY)
        .status(1)
        .stdout_lacks(KEY)
        .stderr_lacks(KEY)
        .stderr_has("success saw [redacted MY_KEY]")
        .run();
    let files = ran.files();
    let stdout = files
        .iter()
        .find(|(p, _)| p.ends_with("agent-stdout.txt") && p.to_string_lossy().contains("-n-"))
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    assert_eq!(
        stdout, "out [redacted MY_KEY]\nsplit [redacted MY_KEY] end\n",
        "the agent's stdout, redacted as it streamed"
    );
    for (path, text) in &files {
        assert!(!text.contains(KEY), "{} holds the key", path.display());
    }
    // What the next agent was sent is what prompt.md shows, and neither
    // holds any part of the key.
    let seen = std::fs::read_to_string(ran.path().join("seen.txt")).unwrap();
    assert!(
        seen.contains("upstream said: answer [redacted MY_KEY]"),
        "{seen}"
    );
    assert!(!seen.contains(&KEY[7..15]), "{seen}");
    for cmd in [
        &["status"][..],
        &["logs", "n"][..],
        &["logs", "n", "--stderr"][..],
    ] {
        ran.then()
            .args(cmd.iter().copied())
            .with_root()
            .env("MY_KEY", KEY)
            .stdout_lacks(KEY)
            .stderr_lacks(KEY)
            .run();
    }
}

/// Escape sequences that retitle the window, clear the screen and colour
/// what follows.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31m";

#[test]
fn what_agents_write_is_shown_never_played_on_a_terminal() {
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.loud]
kind = "command"
command = ["sh", "-c", """
printf 'out \\033]0;pwned\\007\\033[2J\\033[31m red\\n'
conductor bus post --body "$(printf 'bus \\033[2J')" > /dev/null
touch "$JRUN_TASK_FOLDER/DONE"
"""]
[nodes.n]
agent = "loud"
for_each = ["a\u001b[31mb"]
prompt = "work"
"#,
        )
        .apply()
        .stderr_lacks("\u{1b}")
        .stdout_lacks("\u{1b}")
        .run();
    let logs = ran
        .then()
        .args(["logs", "n"])
        .with_root()
        .stdout_lacks("\u{1b}")
        .stdout_has("out \\x1b]0;pwned\\x07\\x1b[2J\\x1b[31m red")
        .run();
    assert!(!logs.stdout.contains(HOSTILE));
    ran.then()
        .args(["status"])
        .with_root()
        .stdout_lacks("\u{1b}")
        .stdout_has("a\\x1b[31mb")
        .run();
    let bus = ran
        .files_named("TASK-MESSAGE-BUS.md")
        .into_iter()
        .next()
        .unwrap();
    ran.then()
        .args(["bus", "read", "--bus"])
        .arg(bus)
        .stdout_lacks("\u{1b}")
        .stdout_has("bus \\x1b[2J")
        .run();
}
