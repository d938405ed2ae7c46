//! The README's commands work: the install line is what cargo understands,
//! and the example it runs plans with the binary built for the tests.

use crate::support::{conductor, root, stderr, stdout};

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
        text.contains("cargo install --path ."),
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
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = conductor()
            .env("CONDUCTOR_ROOT", runs.path())
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`conductor {line}` failed:\n{}",
            stderr(&out)
        );
        assert!(
            !stdout(&out).is_empty() || !stderr(&out).is_empty(),
            "`conductor {line}` printed nothing"
        );
    }
}

#[test]
fn the_hello_example_runs_and_greets() {
    let runs = tempfile::tempdir().unwrap();
    let apply = conductor()
        .env("CONDUCTOR_ROOT", runs.path())
        .args(["apply", "examples/hello/workflow.toml"])
        .output()
        .unwrap();
    assert!(apply.status.success(), "{}", stderr(&apply));
    assert!(stderr(&apply).contains("hello: done"), "{}", stderr(&apply));
    let logs = conductor()
        .env("CONDUCTOR_ROOT", runs.path())
        .args(["logs", "summary"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&logs).trim(),
        "The greetings were:\n- world: Hello, world!\n- conductor: Hello, conductor!"
    );
}
