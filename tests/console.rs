//! What the console says while an apply runs (docs/console.md): after each
//! iteration that does not finish its node, which condition was not met
//! and what was seen instead, kept with the run too.

use crate::apply_support::{run_info, st};
use crate::test_builder::Test;

/// One node whose agent runs `script` (after reading its prompt), with `stop`.
fn flow(script: &str, stop: &str) -> String {
    format!(
        r#"version = 1
name = "t"
[agents.a]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; {script}"]
[nodes.n]
agent = "a"
prompt = "p"
stop = {stop}
"#
    )
}

#[test]
fn each_unmet_condition_says_what_was_seen_instead() {
    let cases = [
        ("echo working", "{ max_iterations = 1 }", "no DONE"),
        (
            "echo almost",
            r#"{ promise = "SHIPPED", max_iterations = 1 }"#,
            "promise `SHIPPED` not in the answer",
        ),
        (
            "echo almost",
            r#"{ output_matches = "^ok$", max_iterations = 1 }"#,
            "the answer does not match `^ok$`",
        ),
        (
            "exit 0",
            r#"{ expr = "iteration > 3", max_iterations = 1 }"#,
            "`iteration > 3` is false",
        ),
        (
            "echo done",
            r#"{ command = "echo compiling; echo 'error[E0308]: mismatched types' >&2; exit 101", max_iterations = 1 }"#,
            "exited 101 (last lines: compiling | error[E0308]: mismatched types)",
        ),
        (
            "echo 'rate limited by the provider' >&2; exit 41",
            "{ exit_zero = true, max_iterations = 1 }",
            "agent exited with code 41: rate limited by the provider",
        ),
    ];
    for (script, stop, why) in cases {
        let ran = Test::new()
            .workflow(flow(script, stop))
            .apply()
            .status(1)
            .stderr_has("n: iteration 1 exited")
            .stderr_has(why)
            .stderr_has("n: FAILED (max_iterations): the last iteration: ")
            .run();
        assert_eq!(ran.state("n"), st("failed", "max_iterations", 1));
        assert!(
            ran.instance("n")["error"]
                .as_str()
                .is_some_and(|e| e.contains(why)),
            "{stop}: {}",
            ran.instance("n")
        );
        let run = &ran.runs("n")[0];
        let info = run_info(run);
        assert!(
            info["why"].as_str().is_some_and(|w| w.contains(why)),
            "{stop}: {info:#}"
        );
        let bus = std::fs::read_to_string(
            run.parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("TASK-MESSAGE-BUS.md"),
        )
        .unwrap();
        assert!(bus.contains("why: ") && bus.contains(why), "{bus}");
    }
}

#[test]
fn a_json_answer_its_schema_refuses_says_which_field() {
    let ran = Test::new()
        .workflow(
            flow(
                r#"echo '{\"score\": 3}'"#,
                "{ exit_zero = true, max_iterations = 1 }",
            )
            .replace(
                "prompt = \"p\"",
                "prompt = \"p\"\noutput = { format = \"json\", schema = \"verdict.json\" }",
            ),
        )
        .file(
            "verdict.json",
            r#"{"type": "object", "required": ["verdict"]}"#,
        )
        .apply()
        .status(1)
        .stderr_has("invalid_json (schema: ")
        .stderr_has("verdict")
        .run();
    assert_eq!(ran.state("n").1, "max_iterations");
}

#[test]
fn a_done_iteration_has_no_why() {
    let ran = Test::new()
        .workflow(flow(
            "touch \\\"$JRUN_TASK_FOLDER/DONE\\\"",
            "{ max_iterations = 2 }",
        ))
        .apply()
        .stderr_lacks("not done")
        .stderr_lacks("no DONE")
        .run();
    assert_eq!(ran.state("n"), st("done", "done_file", 1));
    assert!(run_info(&ran.runs("n")[0])["why"].is_null());
}
