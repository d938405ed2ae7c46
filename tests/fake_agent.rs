//! The hidden fake agent that the engine's tests run: each behaviour it
//! promises, observed from outside with real processes and signals.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::support::{conductor, stdout};

/// Runs the fake agent with a fresh task folder, so its call count never
/// lands in the repository.
fn fake(args: &[&str], prompt: &str) -> std::process::Output {
    let task = tempfile::tempdir().unwrap();
    conductor()
        .env("JRUN_TASK_FOLDER", task.path())
        .arg("__fake-agent")
        .args(args)
        .write_stdin(prompt)
        .output()
        .unwrap()
}

#[test]
fn it_answers_and_exits_as_told() {
    let out = fake(
        &[
            "--exit",
            "3",
            "--say",
            "all done",
            "--promise",
            "<promise>DONE</promise>",
        ],
        "the prompt",
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "all done\n<promise>DONE</promise>\n");
    let out = fake(&["--json", r#"{"tasks":["a","b"]}"#], "p");
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["tasks"][1], "b");
}

#[test]
fn it_creates_done_on_the_nth_call() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    for call in 1..=3 {
        let out = fake(&["--done-after", "2", "--task-folder", folder], "p");
        assert!(out.status.success());
        assert_eq!(stdout(&out), format!("fake agent answered call {call}\n"));
        assert_eq!(
            dir.path().join("DONE").exists(),
            call >= 2,
            "after call {call}"
        );
    }
    // The task folder also comes from the agent environment.
    let other = tempfile::tempdir().unwrap();
    let out = conductor()
        .env("JRUN_TASK_FOLDER", other.path())
        .args(["__fake-agent", "--done-after", "1"])
        .write_stdin("p")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(other.path().join("DONE").exists());
}

#[test]
fn it_speaks_each_clis_stream_json() {
    for (cli, last_type) in [
        ("claude", "result"),
        ("codex", "turn.completed"),
        ("gemini", "result"),
    ] {
        let out = fake(&["--stream", cli, "--say", "FINAL: ok"], "p");
        let events: Vec<serde_json::Value> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.last().unwrap()["type"], last_type, "{cli}");
        assert!(stdout(&out).contains("FINAL: ok"), "{cli}");
    }
    let out = fake(&["--stream", "claude", "--exit", "1"], "p");
    let last: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(last["is_error"], true);
    let out = fake(&["--stream", "codex", "--exit", "1"], "p");
    assert!(stdout(&out).contains("turn.failed"));
}

#[test]
fn it_can_ignore_sigterm_until_killed() {
    let task = tempfile::tempdir().unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .env("JRUN_TASK_FOLDER", task.path())
        .args(["__fake-agent", "--ignore-sigterm", "--sleep", "60s"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"p").unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(
        lines
            .next()
            .unwrap()
            .unwrap()
            .contains("ignored from now on")
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "fake agent: ignoring SIGTERM"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGTERM did not stop it"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[test]
fn it_can_leave_a_grandchild_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // Not `output()`: the grandchild keeps the agent's stdout open, as real
    // agents' children do, so only the agent's own exit is waited for.
    let status = Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .env("JRUN_TASK_FOLDER", dir.path())
        .args([
            "__fake-agent",
            "--grandchild",
            "60s",
            "--pid-file",
            pids.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&pids).unwrap();
    let listed: Vec<&str> = text.lines().collect();
    assert_eq!(listed.len(), 2);
    let grandchild = listed[1];
    assert!(
        std::path::Path::new(&format!("/proc/{grandchild}")).exists(),
        "the grandchild outlives the agent"
    );
    assert!(
        Command::new("kill")
            .args(["-KILL", grandchild])
            .status()
            .unwrap()
            .success()
    );
}
