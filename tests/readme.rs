//! The README's commands work: the install line is what cargo understands,
//! and the example it runs plans with the binary built for the tests.

use crate::support::root;
use crate::test_builder::Test;

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md exists")
}

/// Lines of the README's shell blocks that start with `conductor `.
fn conductor_lines(text: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(lang) = line.strip_prefix("```") {
            inside = !inside && matches!(lang.trim(), "sh" | "console" | "bash");
            continue;
        }
        if inside && let Some(rest) = line.trim().strip_prefix("conductor ") {
            out.push(rest.to_string());
        }
    }
    out
}

#[test]
fn readme_names_install_and_test_commands() {
    let text = readme();
    assert!(
        text.contains("cargo install --locked --path ."),
        "the README must give the install command"
    );
    assert!(
        text.contains("cargo test"),
        "the README must name the test command"
    );
}

#[test]
fn readme_conductor_commands_run() {
    let lines = conductor_lines(&readme());
    assert!(!lines.is_empty(), "the README shows no conductor command");
    assert!(
        lines.iter().any(|l| l.contains("examples/hello")),
        "the README runs the hello example"
    );
    // `apply` writes its runs under CONDUCTOR_ROOT, here a fresh folder,
    // which `status` and `logs` then read.
    let runs = tempfile::tempdir().unwrap();
    for line in lines {
        let ran = Test::in_repo()
            .env("CONDUCTOR_ROOT", runs.path())
            .args(line.split_whitespace())
            .run();
        assert!(
            !ran.stdout.is_empty() || !ran.stderr.is_empty(),
            "`conductor {line}` printed nothing"
        );
    }
}

#[test]
fn the_hello_example_runs_and_greets() {
    let runs = tempfile::tempdir().unwrap();
    Test::in_repo()
        .env("CONDUCTOR_ROOT", runs.path())
        .args(["apply", "examples/hello/workflow.toml"])
        .stderr_has("hello: done")
        .run();
    let logs = Test::in_repo()
        .env("CONDUCTOR_ROOT", runs.path())
        .args(["logs", "summary"])
        .run();
    assert_eq!(
        logs.stdout.trim(),
        "The greetings were:\n- world: Hello, world!\n- conductor: Hello, conductor!"
    );
}
