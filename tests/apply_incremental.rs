//! Incremental apply (DESIGN §3, §9.12, §9.16): a second apply runs no
//! agent, an edited input re-runs exactly what depends on it, `--force`
//! re-runs, and an apply killed or failed part-way is continued by the
//! next one without running completed instances again.

use crate::apply_support::{Flow, state, wait_for};

/// Each agent logs its call to `calls.log` in the workflow folder (one
/// line per call: the instance and its iteration), then prints its prompt.
const AGENTS: &str = r#"version = 1
name = "inc"
[agents.log]
kind = "command"
command = ["sh", "-c", "echo \"$CONDUCTOR_INSTANCE $CONDUCTOR_ITERATION\" >> calls.log; sed '1,/^---$/d'"]
[defaults]
agent = "log"
stop = { exit_zero = true, max_iterations = 1 }
"#;

fn flow(nodes: &str) -> Flow {
    Flow::new(&format!("{AGENTS}\n{nodes}"))
}

/// The calls logged so far, as `instance iteration` lines.
fn calls(f: &Flow) -> Vec<String> {
    std::fs::read_to_string(f.path().join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

const FOUR: &str = r#"
[nodes.a]
prompt = "a: {{ params.n }}"
inputs = ["a.txt"]
[nodes.b]
prompt = "b"
inputs = ["src/**/*.rs"]
[nodes.c]
needs = ["a"]
prompt = "c after {{ needs.a.output }}"
[nodes.d]
needs = ["b"]
prompt = "d"
[params.n]
type = "int"
default = 1
"#;

fn four() -> Flow {
    let f = flow(FOUR);
    std::fs::write(f.path().join("a.txt"), "one").unwrap();
    std::fs::create_dir_all(f.path().join("src/deep")).unwrap();
    std::fs::write(f.path().join("src/deep/lib.rs"), "fn x() {}").unwrap();
    f
}

#[test]
fn a_second_apply_runs_no_agent_and_says_everything_is_up_to_date() {
    let f = four();
    f.apply_ok(&[]);
    assert_eq!(calls(&f).len(), 4);
    let (out, summary) = f.apply(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(calls(&f).len(), 4, "no agent ran: {:?}", calls(&f));
    for key in ["a", "b", "c", "d"] {
        assert_eq!(state(&summary, key).1, "up_to_date", "{key}");
    }
    assert_eq!(summary["counts"]["up_to_date"], 4);
    assert_eq!(summary["counts"]["done"], 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(0 done, 4 up to date, 0 failed, 0 skipped)"),
        "{stderr}"
    );
}

#[test]
fn an_edited_input_reruns_exactly_what_depends_on_it() {
    let f = four();
    f.apply_ok(&[]);
    std::fs::write(f.path().join("src/deep/lib.rs"), "fn y() {}").unwrap();
    let summary = f.apply_ok(&[]);
    assert_eq!(state(&summary, "a").1, "up_to_date");
    assert_eq!(state(&summary, "c").1, "up_to_date");
    assert_eq!(state(&summary, "b").1, "exit_zero");
    assert_eq!(state(&summary, "d").1, "exit_zero");
    assert_eq!(&calls(&f)[4..], ["b 1", "d 1"]);

    // A new file matching the glob is a change too; one that does not match is not.
    std::fs::write(f.path().join("src/new.rs"), "").unwrap();
    std::fs::write(f.path().join("src/notes.txt"), "").unwrap();
    f.apply_ok(&[]);
    assert_eq!(&calls(&f)[6..], ["b 1", "d 1"]);
}

#[test]
fn a_changed_param_or_prompt_reruns_its_node_and_its_dependents_with_the_old_answers_kept() {
    let f = four();
    f.apply_ok(&[]);
    let summary = f.apply_ok(&["--set", "n=2"]);
    assert_eq!(state(&summary, "a").1, "exit_zero");
    assert_eq!(state(&summary, "c").1, "exit_zero");
    assert_eq!(state(&summary, "b").1, "up_to_date");
    assert_eq!(&calls(&f)[4..], ["a 1", "c 1"]);
    // c read a's new answer; an up-to-date a gives its answer from the store.
    std::fs::write(
        f.path().join("flow.toml"),
        format!(
            "{AGENTS}\n{}",
            FOUR.replace("prompt = \"d\"", "prompt = \"d2\"")
        ),
    )
    .unwrap();
    let summary = f.apply_ok(&["--set", "n=2"]);
    assert_eq!(state(&summary, "d").1, "exit_zero");
    assert_eq!(&calls(&f)[6..], ["d 1"]);
}

#[test]
fn an_up_to_date_answer_is_given_to_a_dependent_that_reruns() {
    let f = four();
    f.apply_ok(&[]);
    let summary = f.apply_ok(&["--force=c"]);
    assert_eq!(state(&summary, "a").1, "up_to_date");
    let c = crate::apply_support::instance(&summary, "c");
    let task = std::path::Path::new(c["task_dir"].as_str().unwrap());
    let run = std::fs::read_dir(task.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .max()
        .unwrap();
    let prompt = std::fs::read_to_string(run.join("prompt.md")).unwrap();
    let after = prompt.split("c after").nth(1).unwrap();
    assert!(after.contains("a: 1"), "{prompt}");
}

#[test]
fn force_reruns_the_named_nodes_and_their_dependents_or_everything() {
    let f = four();
    f.apply_ok(&[]);
    f.apply_ok(&["--force=b"]);
    assert_eq!(&calls(&f)[4..], ["b 1", "d 1"]);
    f.apply_ok(&["--force"]);
    assert_eq!(calls(&f).len(), 10);
    let (out, _) = f.apply(&["--force=nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--force nope: no node or instance has that name")
    );
}

/// b completes iteration 1 without being done, hangs in iteration 2 until
/// conductor is killed, and is done in the iteration after `go` exists.
const RESUMABLE: &str = r#"
[agents.slow]
kind = "command"
command = ["sh", "-c", """
echo "$CONDUCTOR_INSTANCE $CONDUCTOR_ITERATION" >> calls.log
if [ -e go ]; then touch "$JRUN_TASK_FOLDER/DONE"; exit 0; fi
if [ "$CONDUCTOR_ITERATION" = 2 ]; then touch hanging; exec sleep 60; fi
"""]
[nodes.a]
prompt = "a"
[nodes.b]
needs = ["a"]
agent = "slow"
prompt = "b"
stop = { done_file = true, exit_zero = false, max_iterations = 5 }
[nodes.c]
needs = ["b"]
prompt = "c"
"#;

/// Applies in the background until b hangs, then SIGKILLs conductor.
fn kill_in_b(f: &Flow) -> String {
    let mut child = f.spawn(&[]);
    wait_for("b's second iteration", || f.path().join("hanging").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    // The watchdog kills the agent's group once conductor is gone.
    let records = f.project_records();
    records
        .iter()
        .find(|r| r["type"] == "WORKFLOW_START")
        .map(|r| r["meta"]["apply_id"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn after_sigkill_apply_continues_the_same_apply_and_resumes_the_interrupted_loop() {
    let f = flow(RESUMABLE);
    let first_id = kill_in_b(&f);
    std::fs::write(f.path().join("go"), "").unwrap();
    let summary = f.apply_ok(&[]);
    assert_eq!(
        summary["apply_id"],
        first_id.as_str(),
        "the same apply goes on"
    );
    // a is not run again; b resumes after its one completed iteration (the
    // killed one does not count, so it is run again as iteration 2).
    assert_eq!(calls(&f), ["a 1", "b 1", "b 2", "b 2", "c 1"]);
    assert_eq!(state(&summary, "a").1, "up_to_date");
    assert_eq!(state(&summary, "b"), ("done".into(), "done_file".into(), 2));
    let b = crate::apply_support::instance(&summary, "b");
    let runs =
        std::fs::read_dir(std::path::Path::new(b["task_dir"].as_str().unwrap()).join("runs"))
            .unwrap()
            .count();
    assert_eq!(runs, 3, "one folder per run, none overwritten");
    let starts: Vec<_> = f
        .project_records()
        .into_iter()
        .filter(|r| r["type"] == "WORKFLOW_START")
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1]["meta"]["resumed"], "true");
    assert_eq!(starts[1]["meta"]["apply_id"], first_id.as_str());
}

#[test]
fn fresh_starts_a_new_apply_with_interrupted_loops_from_iteration_one() {
    let f = flow(RESUMABLE);
    let first_id = kill_in_b(&f);
    std::fs::write(f.path().join("go"), "").unwrap();
    let summary = f.apply_ok(&["--fresh"]);
    assert_ne!(summary["apply_id"], first_id.as_str());
    assert_eq!(calls(&f), ["a 1", "b 1", "b 2", "b 1", "c 1"]);
}

#[test]
fn a_failed_node_restarts_at_iteration_one_when_applied_again_and_done_ones_are_kept() {
    let f = flow(
        r#"
[agents.flaky]
kind = "command"
command = ["sh", "-c", "echo \"$CONDUCTOR_INSTANCE $CONDUCTOR_ITERATION\" >> calls.log; test -e fixed"]
[nodes.a]
prompt = "a"
[nodes.b]
needs = ["a"]
agent = "flaky"
prompt = "b"
stop = { exit_zero = true, max_iterations = 2 }
"#,
    );
    let (out, first) = f.apply(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(state(&first, "b").1, "max_iterations");
    std::fs::write(f.path().join("fixed"), "").unwrap();
    let second = f.apply_ok(&[]);
    assert_eq!(
        second["apply_id"], first["apply_id"],
        "a failed apply is continued"
    );
    assert_eq!(calls(&f), ["a 1", "b 1", "b 2", "b 1"]);
    assert_eq!(state(&second, "b"), ("done".into(), "exit_zero".into(), 1));
}

#[test]
fn a_torn_last_record_on_the_project_bus_does_not_stop_the_next_apply() {
    let f = four();
    f.apply_ok(&[]);
    let bus = f.root().join("inc/PROJECT-MESSAGE-BUS.md");
    let mut text = std::fs::read(&bus).unwrap();
    // A power cut in the middle of an append: half a header, no newline.
    text.extend_from_slice(b"---\nmsg_id: MSG-2026");
    std::fs::write(&bus, text).unwrap();
    std::fs::remove_dir_all(f.root().join("inc/.index")).unwrap();
    let summary = f.apply_ok(&[]);
    assert_eq!(summary["counts"]["up_to_date"], 4);
    let summary = f.apply_ok(&["--force=a"]);
    assert_eq!(state(&summary, "a").1, "exit_zero");
    let out = crate::support::conductor()
        .args(["bus", "read", "--json", "--bus"])
        .arg(&bus)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .contains("WORKFLOW_STOP")
    );
}

/// `conductor plan` on the flow, with its runs root: the `state:` line of each instance.
fn plan_states(f: &Flow, extra: &[&str]) -> Vec<String> {
    let out = crate::support::conductor()
        .current_dir(f.path())
        .args(["plan", "flow.toml", "--root"])
        .arg(f.root())
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("state:")
                .map(|s| s.trim().to_string())
        })
        .collect()
}

#[test]
fn plan_says_what_is_new_up_to_date_or_changed_and_what_changed() {
    let f = four();
    assert_eq!(plan_states(&f, &[]), ["new", "new", "new", "new"]);
    f.apply_ok(&[]);
    assert_eq!(plan_states(&f, &[]), ["up to date"; 4]);
    std::fs::write(f.path().join("src/deep/lib.rs"), "fn y() {}").unwrap();
    // Plan order is a, b, c, d.
    assert_eq!(
        plan_states(&f, &["--set", "n=5"]),
        [
            "changed: param n",
            "changed: input src/deep/lib.rs",
            "changed: upstream `a`",
            "changed: upstream `b`"
        ]
    );
    assert_eq!(calls(&f).len(), 4, "plan runs nothing");
}

#[test]
fn an_agent_that_edits_its_own_inputs_is_up_to_date_on_the_next_apply() {
    let f = flow(
        r#"
[agents.writer]
kind = "command"
command = ["sh", "-c", "echo \"$CONDUCTOR_INSTANCE $CONDUCTOR_ITERATION\" >> calls.log; date +%N >> notes/log.txt"]
[nodes.w]
agent = "writer"
prompt = "append to notes"
inputs = ["notes/*.txt"]
[nodes.after]
needs = ["w"]
prompt = "read notes"
inputs = ["notes/*.txt"]
"#,
    );
    std::fs::create_dir(f.path().join("notes")).unwrap();
    std::fs::write(f.path().join("notes/log.txt"), "start\n").unwrap();
    f.apply_ok(&[]);
    let summary = f.apply_ok(&[]);
    assert_eq!(calls(&f), ["w 1", "after 1"], "{summary:#}");
    // A person's edit is a change.
    std::fs::write(f.path().join("notes/log.txt"), "edited\n").unwrap();
    f.apply_ok(&[]);
    assert_eq!(&calls(&f)[2..], ["w 1", "after 1"]);
}

#[test]
fn run_time_fan_out_instances_are_up_to_date_on_the_next_apply() {
    let f = flow(
        r#"
[agents.plan]
kind = "command"
command = ["sh", "-c", "echo \"$CONDUCTOR_INSTANCE $CONDUCTOR_ITERATION\" >> calls.log; echo '{\"tasks\": [\"x\", \"y\"]}'"]
[nodes.plan]
agent = "plan"
prompt = "plan"
output = { format = "json" }
[nodes.work]
for_each = { from = "plan", path = "json.tasks" }
prompt = "do {{ item }}"
[nodes.join]
needs = ["work"]
prompt = "join"
"#,
    );
    f.apply_ok(&[]);
    assert_eq!(calls(&f).len(), 4);
    let summary = f.apply_ok(&[]);
    assert_eq!(calls(&f).len(), 4, "{summary:#}");
    assert_eq!(summary["counts"]["up_to_date"], 4);
    f.apply_ok(&["--force=work[y]"]);
    assert_eq!(&calls(&f)[4..], ["work[y] 1", "join 1"]);
}

#[test]
fn status_and_logs_show_an_up_to_date_instance_from_its_earlier_run() {
    let f = four();
    f.apply_ok(&[]);
    f.apply_ok(&[]);
    let status = crate::support::conductor()
        .current_dir(f.path())
        .args(["status", "--workflow", "flow.toml", "--root"])
        .arg(f.root())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with('c') && l.contains("up_to_date")),
        "{text}"
    );
    let logs = crate::support::conductor()
        .current_dir(f.path())
        .args(["logs", "c", "--workflow", "flow.toml", "--root"])
        .arg(f.root())
        .output()
        .unwrap();
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(String::from_utf8_lossy(&logs.stdout).contains("c after"));
}

#[test]
fn a_runs_root_inside_the_workflow_folder_is_never_a_glob_item() {
    // The flow's runs root is `runs/` beside flow.toml: its agent-stdout.txt
    // files must not become items of `**/*.txt`.
    let f = flow(
        r#"
[nodes.each]
for_each = { glob = "**/*.txt" }
prompt = "{{ item }}"
"#,
    );
    std::fs::write(f.path().join("a.txt"), "a").unwrap();
    std::fs::write(f.path().join("b.txt"), "b").unwrap();
    f.apply_ok(&[]);
    let summary = f.apply_ok(&[]);
    let keys: Vec<&str> = summary["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["each[a.txt]", "each[b.txt]"]);
    assert_eq!(summary["counts"]["up_to_date"], 2);
}
