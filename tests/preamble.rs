//! Every command the agent preamble advertises works when an agent runs it,
//! with the environment an agent gets (docs/run-store.md, "The agent's
//! environment").

use std::process::Command;

use conductor::preamble::{PreambleOptions, RunPlace, prompt_file};

#[test]
fn every_advertised_command_works_from_inside_an_agent() {
    let root = tempfile::tempdir().unwrap();
    let task = root.path().join("demo/task-20260101-000000-x-abc123");
    let run = task.join("runs/000001-20260101-000000");
    std::fs::create_dir_all(&run).unwrap();
    let bus = task.join("TASK-MESSAGE-BUS.md");
    let place = RunPlace {
        project_id: "demo",
        task_id: "task-20260101-000000-x-abc123",
        run_id: "000001-20260101-000000",
        task_folder: &task,
        run_folder: &run,
        bus: &bus,
    };
    let text = prompt_file(
        &place,
        PreambleOptions {
            done_file: true,
            iteration: 1,
            prompt_uses_previous: false,
            local: true,
        },
        "Do it.",
    );
    // Commands are the indented lines; `conductor bus read` is advertised inline.
    let mut commands: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .map(str::to_string)
        .collect();
    let inline: Vec<&str> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| c.starts_with("conductor "))
        .collect();
    commands.extend(inline.iter().map(|c| (*c).to_string()));
    assert!(commands.len() >= 4, "{commands:?}");
    let bin_dir = assert_cmd::cargo::cargo_bin("conductor")
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in &commands {
        let out = Command::new("sh")
            .args(["-c", command])
            .current_dir(&run)
            .env("PATH", &path)
            .env("JRUN_PROJECT_ID", "demo")
            .env("JRUN_TASK_ID", place.task_id)
            .env("JRUN_ID", place.run_id)
            .env("JRUN_MESSAGE_BUS", &bus)
            .env("JRUN_TASK_FOLDER", &task)
            .env("JRUN_RUN_FOLDER", &run)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{command}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(task.join("DONE").exists(), "the DONE command created DONE");
    let messages = conductor::bus::read_all(&bus).unwrap();
    assert_eq!(messages.len(), 2, "both bus post examples posted");
    assert!(
        messages
            .iter()
            .all(|m| m.task_id == place.task_id && m.run_id == place.run_id)
    );
}
