//! Owns what an agent reads before its prompt (`prompt.md`): where its task
//! and run folders are, how to post to the bus with the commands that really
//! exist, how to signal DONE (only when `done_file` is in force: see
//! docs/workflow-format.md, "The default success condition"), then the
//! prompt itself, with the Go seed's restart prefix on later iterations
//! unless the prompt reads `previous` itself. An HTTP agent (a model
//! called over its API) runs no command and sees no file: it is told none
//! of that, only its prompt (docs/agents.md, "What each kind is told").

use std::fmt::Write;
use std::path::Path;

use crate::store::layout::{RunDir, TaskDir};

/// The seed's restart prefix for iterations after the first.
pub const RESTART_PREFIX: &str = "Continue working on the following:\n\n";

/// Where one run is, as the agent's environment also says.
#[derive(Debug, Clone)]
pub struct RunPlace<'a> {
    pub project_id: &'a str,
    pub task_id: &'a str,
    pub run_id: &'a str,
    pub task_folder: &'a Path,
    pub run_folder: &'a Path,
    pub bus: &'a Path,
}

/// What the preamble must say.
#[derive(Debug, Clone, Copy)]
pub struct PreambleOptions {
    /// Tell the agent to create DONE when finished.
    pub done_file: bool,
    /// The iteration, from 1.
    pub iteration: u32,
    /// The prompt template reads `previous` itself, so it needs no prefix.
    pub prompt_uses_previous: bool,
    /// The agent runs on this machine, with its files and commands (a
    /// process agent); an HTTP agent does not.
    pub local: bool,
}

/// The full text given to the agent on stdin.
pub fn prompt_file(place: &RunPlace<'_>, options: PreambleOptions, prompt: &str) -> String {
    let mut out = String::new();
    if !options.local {
        if options.iteration > 1 && !options.prompt_uses_previous {
            out.push_str(RESTART_PREFIX);
        }
        out.push_str(prompt);
        if !prompt.ends_with('\n') {
            out.push('\n');
        }
        return out;
    }
    let _ = writeln!(out, "JRUN_TASK_FOLDER={}", place.task_folder.display());
    let _ = writeln!(out, "JRUN_RUN_FOLDER={}", place.run_folder.display());
    let _ = writeln!(out, "JRUN_PROJECT_ID={}", place.project_id);
    let _ = writeln!(out, "JRUN_TASK_ID={}", place.task_id);
    let _ = writeln!(out, "JRUN_ID={}", place.run_id);
    let _ = writeln!(out, "JRUN_MESSAGE_BUS={}", place.bus.display());
    let _ = writeln!(
        out,
        "Write output.md to {}",
        RunDir::at(place.run_folder.to_path_buf())
            .output()
            .display()
    );
    out.push_str(
        "\n## Message Bus\n\n\
         Post what others should know to the task's message bus (JRUN_MESSAGE_BUS is\n\
         already set, so no path is needed):\n\n\
         \x20   conductor bus post --type PROGRESS --body \"what you did, what is next\"\n\
         \x20   conductor bus post --type FACT --body \"a result others can rely on\"\n\n\
         Types: PROGRESS, FACT, DECISION, ERROR, QUESTION, INFO. Read it with\n\
         `conductor bus read --tail 20`.\n",
    );
    if options.done_file {
        let _ = write!(
            out,
            "\n## Completion\n\nWhen the task is complete, create the file {}:\n\n\x20   touch \"$JRUN_TASK_FOLDER/DONE\"\n\n\
             Until it exists you will be started again on this task.\n",
            TaskDir::at(place.task_folder.to_path_buf())
                .done()
                .display()
        );
    }
    out.push_str("\n---\n\n");
    if options.iteration > 1 && !options.prompt_uses_previous {
        out.push_str(RESTART_PREFIX);
    }
    out.push_str(prompt);
    if !prompt.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let task = std::path::PathBuf::from("/runs/p/task-1");
        (
            task.clone(),
            task.join("runs/000001-x"),
            task.join("TASK-MESSAGE-BUS.md"),
        )
    }

    #[test]
    fn first_iteration_has_no_prefix_and_done_only_when_asked() {
        let (t, r, b) = place();
        let p = RunPlace {
            project_id: "p",
            task_id: "task-1",
            run_id: "000001-x",
            task_folder: &t,
            run_folder: &r,
            bus: &b,
        };
        let text = prompt_file(
            &p,
            PreambleOptions {
                done_file: false,
                iteration: 1,
                prompt_uses_previous: false,
                local: true,
            },
            "Fix it.",
        );
        assert!(text.starts_with("JRUN_TASK_FOLDER=/runs/p/task-1\n"));
        assert!(text.ends_with("\n---\n\nFix it.\n"));
        assert!(!text.contains("DONE"));
        let text = prompt_file(
            &p,
            PreambleOptions {
                done_file: true,
                iteration: 2,
                prompt_uses_previous: false,
                local: true,
            },
            "Fix it.",
        );
        assert!(text.contains("touch \"$JRUN_TASK_FOLDER/DONE\""));
        assert!(text.ends_with("---\n\nContinue working on the following:\n\nFix it.\n"));
        let text = prompt_file(
            &p,
            PreambleOptions {
                done_file: true,
                iteration: 2,
                prompt_uses_previous: true,
                local: true,
            },
            "Fix it.",
        );
        assert!(!text.contains("Continue working"));
        // An HTTP agent is told nothing it could not act on.
        let text = prompt_file(
            &p,
            PreambleOptions {
                done_file: true,
                iteration: 2,
                prompt_uses_previous: false,
                local: false,
            },
            "Review it.",
        );
        assert_eq!(text, "Continue working on the following:\n\nReview it.\n");
    }
}
