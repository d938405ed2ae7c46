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

/// What `conductor apply` draws on a terminal `cols` wide, one entry per
/// row of the screen. The live view pads each line to the width and lets
/// the terminal go to the next row, so rows are cut from what is drawn
/// between cursor movements.
fn on_a_terminal(flow: &crate::apply_support::Flow, cols: usize, args: &str) -> Vec<String> {
    let text = crate::apply_support::apply_on_a_terminal(flow, cols, args);
    let csi = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    let mut rows = Vec::new();
    for drawn in csi.replace_all(&text, "\n").split(['\n', '\r']) {
        let chars: Vec<char> = drawn.chars().collect();
        rows.extend(chars.chunks(cols).map(|row| row.iter().collect::<String>()));
    }
    rows
}

#[test]
fn a_terminal_shows_a_header_of_counts_and_money_and_no_live_line_wraps() {
    // One claude-kind agent reports 5 cents and ends; one with a long name
    // runs on, so the header is drawn after the first one's cost is in.
    let flow = crate::apply_support::Flow::new(
        r#"version = 1
name = "t"
[agents.paid]
kind = "claude"
command = ["sh", "-c", "echo '{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"ok\",\"total_cost_usd\":0.05,\"usage\":{\"input_tokens\":1200,\"output_tokens\":34}}'"]
[agents.slow]
kind = "command"
command = ["sh", "-c", "sleep 2.5"]
[nodes.quick]
agent = "paid"
prompt = "p"
stop = { exit_zero = true }
[nodes.a-node-with-a-rather-long-name-that-a-narrow-terminal-cuts]
agent = "slow"
prompt = "p"
stop = { exit_zero = true }
"#,
    );
    let lines = on_a_terminal(&flow, 48, "--budget-usd 1");
    let all = lines.join("\n");
    // The header, on one row, with what was spent against the budget.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("done 1/2 · running 1 · $0.05 of $1.00")),
        "{all}"
    );
    // A live line (a spinner, the key, what it does, the time) is cut to
    // the row: its time is on the row its spinner is on.
    let spinner = |c: char| ('\u{2800}'..='\u{28ff}').contains(&c);
    let live: Vec<&String> = lines.iter().filter(|l| l.chars().any(spinner)).collect();
    assert!(live.iter().any(|l| l.contains("a-node-with")), "{all}");
    for l in live {
        assert!(
            l.trim_end().ends_with(']'),
            "a live line wrapped: {l:?}\n{all}"
        );
    }
    // Nothing of the live view is left behind: the header is gone at the end.
    let last_header = lines.iter().rposition(|l| l.contains("running "));
    let table = lines.iter().rposition(|l| l.starts_with("instance "));
    assert!(last_header < table, "{all}");
}

#[test]
fn success_command_output_is_folded_under_its_command_not_mixed_in() {
    let ran = Test::new()
        .workflow(format!(
            "{}\n[success]\ncommands = [\"echo quiet-pass\", \"echo one; echo 'two: it broke'; exit 4\"]\n",
            flow("touch \\\"$JRUN_TASK_FOLDER/DONE\\\"", "{ max_iterations = 1 }")
        ))
        .apply()
        .status(1)
        .stderr_has("[success] echo quiet-pass: exit 0")
        .stderr_lacks("quiet-pass\n")
        .stderr_has(": exit 4, its last lines:\n  │ one\n  │ two: it broke")
        .run();
    assert_eq!(ran.json()["success"][1]["exit_code"], 4);
}

#[test]
fn a_plain_console_session_matches_its_snapshot() {
    // One instance at a time, so the lines come in one order: a node that
    // fails with its cause, one whose promise never comes, a fan-out of
    // named JSON items, and `[success]` commands, one failing.
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "shown"
[agents.failing]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; echo 'rate limited' >&2; exit 41"]
[agents.talker]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; echo 'almost there'"]
[agents.worker]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; touch \"$JRUN_TASK_FOLDER/DONE\""]
[nodes.a]
agent = "failing"
prompt = "p"
stop = { exit_zero = true, max_iterations = 2 }
on_failure = "continue"
[nodes.b]
agent = "talker"
prompt = "p"
stop = { promise = "SHIPPED", max_iterations = 1 }
on_failure = "continue"
[nodes.work]
agent = "worker"
for_each = [{ name = "Word Count" }, { name = "Lint" }]
prompt = "{{ item.name }}"
[success]
commands = ["true", "echo 'checking'; echo 'no: broken' >&2; exit 2"]
"#,
        )
        .apply()
        .args(["--max-parallel", "1"])
        .env("NO_COLOR", "1")
        .status(1)
        .run();
    let mut settings = insta::Settings::clone_current();
    settings.set_omit_expression(true);
    settings.add_filter(&regex::escape(&ran.root().display().to_string()), "[ROOT]");
    settings.add_filter(r"(?m)^\d{2}:\d{2}:\d{2}Z ", "[T] ");
    settings.add_filter(r"apply-\d{8}-\d{6}-[0-9a-f]{6}\b", "apply-[ID]");
    settings.add_filter(r"\s+\d+(?:\.\d)?(?:ms|s)\b", " [D]");
    settings.bind(|| insta::assert_snapshot!("plain_console_session", ran.stderr));
}
