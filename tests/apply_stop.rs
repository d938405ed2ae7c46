//! Every stop condition and limit of the Ralph loop, with the fake agent.

use crate::apply_support::{Flow, one_node, st, state};
use crate::test_builder::Test;

fn run(args: &str, stop: &str) -> (i32, (String, String, u64)) {
    let flow = Flow::new(&one_node(args, stop));
    let (out, summary) = flow.apply(&[]);
    let code = out.status.code().unwrap_or(-1);
    (code, state(&summary, "n"))
}

#[test]
fn done_file_is_the_default_for_process_agents() {
    assert_eq!(
        run(r#""--done-after", "2""#, "{ max_iterations = 5 }"),
        (0, st("done", "done_file", 2))
    );
}

#[test]
fn promise_output_matches_and_exit_zero() {
    assert_eq!(
        run(
            r#""--promise", "<promise>DONE</promise>""#,
            r#"{ promise = "<promise>DONE</promise>" }"#
        ),
        (0, st("done", "promise", 1))
    );
    assert_eq!(
        run(
            r#""--say", "score: 97""#,
            r"{ output_matches = 'score: 9\d' }"
        ),
        (0, st("done", "output_matches", 1))
    );
    assert_eq!(
        run(r#""--exit", "0""#, "{ exit_zero = true }"),
        (0, st("done", "exit_zero", 1))
    );
}

#[test]
fn command_and_expr_are_checked_after_each_iteration() {
    assert_eq!(
        run(
            r#""--say", "x""#,
            r#"{ command = 'test "$(cat "$JRUN_TASK_FOLDER/fake-agent-calls")" -ge 2' }"#
        ),
        (0, st("done", "command", 2))
    );
    assert_eq!(
        run(
            r#""--say", "x""#,
            r#"{ expr = "iteration >= 3 and output | trim == 'x'" }"#
        ),
        (0, st("done", "expr", 3))
    );
}

#[test]
fn all_requires_every_condition_written() {
    // The promise holds from the first call, DONE only from the second.
    assert_eq!(
        run(
            r#""--promise", "OK", "--done-after", "2""#,
            r#"{ promise = "OK", done_file = true, all = true }"#
        ),
        (0, st("done", "all", 2))
    );
}

#[test]
fn max_iterations_fails_the_node() {
    assert_eq!(
        run(r#""--say", "not yet""#, "{ max_iterations = 3 }"),
        (1, st("failed", "max_iterations", 3))
    );
}

#[test]
fn timeout_idle_timeout_and_deadline() {
    assert_eq!(
        run(r#""--sleep", "30s""#, r#"{ timeout = "300ms" }"#),
        (1, st("failed", "timeout", 1))
    );
    assert_eq!(
        run(r#""--sleep", "30s""#, r#"{ idle_timeout = "300ms" }"#),
        (1, st("failed", "idle_timeout", 1))
    );
    // Each iteration takes 400 ms; the whole node may take 1 s.
    let (code, (status, reason, iterations)) = run(
        r#""--sleep", "400ms""#,
        r#"{ deadline = "1s", max_iterations = 10 }"#,
    );
    assert_eq!(
        (code, status.as_str(), reason.as_str()),
        (1, "failed", "deadline")
    );
    assert!((2..=3).contains(&iterations), "{iterations} iterations");
}

#[test]
fn budgets_use_the_usage_the_agent_reports() {
    // The fake claude stream reports $0.0016 and 240 tokens per call.
    let claude = r#"[agents.fake]
kind = "claude"
command = ["conductor"]
args = ["__fake-agent", "--stream", "claude"]
"#;
    for (stop, reason) in [
        ("{ budget_usd = 0.003 }", "budget_usd"),
        ("{ budget_tokens = 300 }", "budget_tokens"),
    ] {
        let ran = Test::new()
            .workflow(format!(
                "version = 1\nname = \"t\"\n{claude}\n[nodes.n]\nagent = \"fake\"\nprompt = \"p\"\nstop = {stop}\n"
            ))
            .apply()
            .status(1)
            .run();
        assert_eq!(ran.state("n"), st("failed", reason, 2));
        let usage = &ran.instance("n")["usage"];
        assert_eq!(usage["input_tokens"], 400);
        assert!((usage["cost_usd"].as_f64().unwrap() - 0.0032).abs() < 1e-9);
    }
}

#[test]
fn stall_fails_a_loop_that_changes_nothing() {
    assert_eq!(
        run(
            r#""--say", "same answer""#,
            "{ stall = 2, max_iterations = 10 }"
        ),
        (1, st("failed", "stall", 3))
    );
    // An answer that changes every time is not a stall.
    assert_eq!(
        run("", "{ stall = 2, max_iterations = 4 }"),
        (1, st("failed", "max_iterations", 4))
    );
}

#[test]
fn later_iterations_get_the_restart_prefix_unless_the_prompt_uses_previous() {
    let ran = Test::new()
        .workflow(one_node(r#""--done-after", "2""#, "{ max_iterations = 3 }"))
        .apply()
        .run();
    let prompts = ran.prompts();
    assert_eq!(prompts.len(), 2);
    assert!(prompts[0].ends_with("---\n\nwork\n"), "{}", prompts[0]);
    assert!(prompts[1].ends_with("---\n\nContinue working on the following:\n\nwork\n"));

    let ran = Test::new()
        .workflow(one_node(r#""--done-after", "2""#, "{ max_iterations = 3 }").replace(
            r#"prompt = "work""#,
            r#"prompt = "work{% if previous is defined %} (last time: {{ previous.output | trim }}, exit {{ previous.exit_code }}){% endif %}""#,
        ))
        .apply()
        .run();
    let second = ran.prompts().into_iter().nth(1).unwrap();
    assert!(
        second.ends_with("---\n\nwork (last time: fake agent answered call 1, exit 0)\n"),
        "{second}"
    );
}

#[test]
fn fallback_agents_take_over_after_an_agent_error() {
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.broken]
kind = "command"
command = ["conductor", "__fake-agent", "--exit", "1"]
[agents.good]
kind = "command"
command = ["conductor", "__fake-agent", "--done-after", "1"]
[nodes.n]
agent = "broken"
fallback_agents = ["good"]
prompt = "p"
"#,
        )
        .apply()
        .run();
    assert_eq!(ran.state("n"), st("done", "done_file", 2));
    let kinds: Vec<String> = ran.task_kinds();
    assert_eq!(kinds, ["RUN_START", "RUN_CRASH", "RUN_START", "RUN_STOP"]);
}

#[test]
fn a_json_answer_must_match_its_schema_and_the_next_iteration_is_told_why() {
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.learner]
kind = "command"
command = ["sh", "-c", "if [ -f \"$JRUN_TASK_FOLDER/once\" ]; then echo '{\"tasks\": [\"a\"]}'; else touch \"$JRUN_TASK_FOLDER/once\"; echo 'Here: {\"wrong\": 1}'; fi"]
[nodes.n]
agent = "learner"
prompt = "list tasks{% if previous is defined %} (last time: {{ previous.error }}){% endif %}"
output = { format = "json", schema = "tasks.schema.json" }
stop = { exit_zero = true, max_iterations = 3 }
"#,
        )
        .file(
            "tasks.schema.json",
            r#"{"type": "object", "required": ["tasks"], "properties": {"tasks": {"type": "array"}}}"#,
        )
        .apply()
        .run();
    assert_eq!(ran.state("n"), st("done", "exit_zero", 2));
    let second = ran.prompts().into_iter().nth(1).unwrap();
    assert!(second.contains("does not match"), "{second}");
    assert!(
        second.contains("\"tasks\" is a required property"),
        "{second}"
    );
}

#[test]
fn workflow_limits_cap_the_whole_apply() {
    let claude = r#"version = 1
name = "t"
[agents.fake]
kind = "claude"
command = ["conductor"]
args = ["__fake-agent", "--stream", "claude"]
[nodes.n]
agent = "fake"
prompt = "p"
stop = { max_iterations = 5 }
"#;
    let ran = Test::new()
        .workflow(claude)
        .apply()
        .args(["--budget-usd", "0.003"])
        .status(1)
        .run();
    assert_eq!(ran.state("n"), st("failed", "budget_usd", 2));

    let ran = Test::new()
        .workflow(format!(
            "{}\n[limits]\nmax_agents = 2\n",
            one_node(r#""--done-after", "1""#, "{}")
                .replace("[nodes.n]", "[nodes.n]\nfor_each = [\"a\", \"b\", \"c\"]")
        ))
        .apply()
        .args(["--max-parallel", "1"])
        .status(1)
        .run();
    assert_eq!(ran.state("n[a]"), st("done", "done_file", 1));
    assert_eq!(ran.state("n[b]"), st("done", "done_file", 1));
    assert_eq!(ran.state("n[c]"), st("failed", "max_agents", 0));
}

#[test]
fn a_loop_that_ends_after_agent_errors_says_why_in_its_error() {
    let ran = Test::new()
        .workflow(one_node(r#""--exit", "3""#, "{ max_iterations = 2 }"))
        .apply()
        .status(1)
        .run();
    assert_eq!(ran.state("n"), st("failed", "max_iterations", 2));
    assert_eq!(
        ran.instance("n")["error"],
        "the last iteration: agent exited with code 3; no DONE"
    );
}

#[test]
fn a_stop_expr_that_cannot_be_evaluated_fails_the_node_and_says_why() {
    // `output` is a string: it has no attribute to call, at run time. That
    // fails the node whatever the command would say, so it is not run.
    let flow = Flow::new(&one_node(
        r#""--say", "x""#,
        r#"{ expr = "output.nope.deeper > 1", command = "touch checked" }"#,
    ));
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(state(&summary, "n"), st("failed", "stop_error", 1));
    assert!(!flow.path().join("checked").exists(), "the command ran");
    let error = crate::apply_support::instance(&summary, "n")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("stop expr `output.nope.deeper > 1`"),
        "{summary:#}"
    );
    let run = &crate::apply_support::runs(&summary, "n")[0];
    let info = crate::apply_support::run_info(run);
    // The agent's run completed; the check after it is what failed.
    assert_eq!(info["status"], "completed", "{info:#}");
    assert_eq!(info["stop_reason"], "stop_error", "{info:#}");
    assert!(
        info["error_summary"]
            .as_str()
            .is_some_and(|e| e.contains("stop expr")),
        "{info:#}"
    );
}

#[test]
fn the_conditions_judge_the_whole_answer_not_its_first_mib() {
    // Past the first MiB (all templates are handed) the promise still counts.
    let long = r#""sh", "-c", "head -c 2097152 /dev/zero | tr '\\0' x; echo; echo '<promise>DONE</promise>'""#;
    let flow = Flow::new(&crate::apply_support::one_node_command(
        long,
        r#"{ promise = "<promise>DONE</promise>", max_iterations = 1 }"#,
    ));
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{summary:#}");
    assert_eq!(state(&summary, "n"), st("done", "promise", 1));

    // A JSON answer longer than a MiB is read whole, and `expr` sees it.
    let json = r#""sh", "-c", "printf '{\"pad\": \"'; head -c 2097152 /dev/zero | tr '\\0' x; printf '\", \"ok\": true}'""#;
    let flow = Flow::new(
        &crate::apply_support::one_node_command(
            json,
            r#"{ expr = "json.ok", max_iterations = 1 }"#,
        )
        .replace(
            "prompt = \"work\"",
            "prompt = \"work\"\noutput = { format = \"json\" }",
        ),
    );
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(0), "{summary:#}");
    assert_eq!(state(&summary, "n"), st("done", "expr", 1));

    // Past 64 MiB nothing is judged by its beginning: the node fails, saying so.
    let huge =
        r#""sh", "-c", "head -c 68157440 /dev/zero | tr '\\0' x; echo '<promise>DONE</promise>'""#;
    let flow = Flow::new(&crate::apply_support::one_node_command(
        huge,
        r#"{ promise = "<promise>DONE</promise>", max_iterations = 1 }"#,
    ));
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(1), "{summary:#}");
    assert_eq!(state(&summary, "n"), st("failed", "stop_error", 1));
    let error = crate::apply_support::instance(&summary, "n")["error"].to_string();
    assert!(error.contains("more than the 64 MiB"), "{error}");
}

#[test]
fn budgets_that_are_no_amount_are_refused() {
    Test::new()
        .workflow(
            "version = 1\nname = \"t\"\n[agents.a]\nkind = \"command\"\ncommand = [\"cat\"]\n\
             price = { input_per_mtok = nan, output_per_mtok = -inf }\n\
             [limits]\nbudget_usd = -1.5\n\
             [nodes.n]\nagent = \"a\"\nprompt = \"p\"\nstop = { budget_usd = inf }\n",
        )
        .args(["validate", "flow.toml"])
        .status(2)
        .stderr_has("`input_per_mtok` must be a finite number greater than 0, not nan")
        .stderr_has("`output_per_mtok` must be a finite number greater than 0, not -inf")
        .stderr_has("`budget_usd` must be a finite number greater than 0, not -1.5")
        .stderr_has("`budget_usd` must be a finite number greater than 0, not inf")
        .run();
    for bad in ["NaN", "inf", "-3", "0", "1e400"] {
        Test::new()
            .workflow(one_node(r#""--say", "x""#, "{ exit_zero = true }"))
            .apply()
            .arg(format!("--budget-usd={bad}"))
            .status(2)
            .stderr_has(format!(
                "a budget is a number of US dollars greater than 0, such as 2.50; `{bad}` is not"
            ))
            .run();
    }
}

#[test]
fn token_sums_saturate_and_a_negative_cost_is_an_agent_error() {
    let claude = |line: &str| {
        format!(
            "version = 1\nname = \"t\"\n[agents.fake]\nkind = \"claude\"\ncommand = [\"conductor\"]\n\
             args = [\"__fake-agent\", \"--json\", '{line}']\n\
             [nodes.n]\nagent = \"fake\"\nprompt = \"p\"\nstop = {{ exit_zero = true, max_iterations = 2, budget_tokens = 1000 }}\n"
        )
    };
    // More tokens than 64 bits hold, reported in parts: the sum saturates
    // (and is well over the budget), it does not wrap around to look small.
    let ran = Test::new()
        .workflow(claude(&format!(
            r#"{{"type":"result","subtype":"success","is_error":false,"result":"ok","usage":{{"input_tokens":{max},"cache_read_input_tokens":{max},"output_tokens":{max}}}}}"#,
            max = u64::MAX
        )))
        .apply()
        .stderr_lacks("panicked")
        .stderr_lacks("overflow")
        .run();
    assert_eq!(ran.state("n"), st("done", "exit_zero", 1));
    assert_eq!(ran.instance("n")["usage"]["input_tokens"], u64::MAX);
    // A negative cost would give back what was spent: the run is an agent
    // error, which says why, and the cost is not counted.
    let ran = Test::new()
        .workflow(claude(
            r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","total_cost_usd":-5,"usage":{"input_tokens":1,"output_tokens":1}}"#,
        ))
        .apply()
        .status(1)
        .run();
    assert_eq!(ran.state("n"), st("failed", "max_iterations", 2));
    let error = ran.instance("n")["error"].as_str().unwrap_or_default();
    assert!(error.contains("a cost of -5 USD"), "{error}");
    assert_eq!(ran.instance("n")["usage"]["cost_usd"], 0.0);
}
