//! Incremental apply (docs/run-store.md): a second apply runs no
//! agent, an edited input re-runs exactly what depends on it, `--force`
//! re-runs, and an apply killed or failed part-way is continued by the
//! next one without running completed instances again.

use crate::apply_support::{Flow, wait_for};
use crate::test_builder::{Ran, Test};

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

/// A test of a workflow made of [`AGENTS`] and these nodes.
fn flow(nodes: &str) -> Test {
    Test::new().workflow(format!("{AGENTS}\n{nodes}"))
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

fn four() -> Test {
    flow(FOUR)
        .file("a.txt", "one")
        .file("src/deep/lib.rs", "fn x() {}")
}

/// The next `apply` in the same folder, which must exit 0.
fn again(ran: &Ran, args: &[&str]) -> Ran {
    ran.then().apply().args(args).run()
}

#[test]
fn a_second_apply_runs_no_agent_and_says_everything_is_up_to_date() {
    let f = four().apply().run();
    assert_eq!(calls(&f).len(), 4);
    let second = f
        .then()
        .apply()
        .stderr_has("(0 done, 4 up to date, 0 failed, 0 skipped)")
        .run();
    assert_eq!(calls(&f).len(), 4, "no agent ran: {:?}", calls(&f));
    for key in ["a", "b", "c", "d"] {
        assert_eq!(second.state(key).1, "up_to_date", "{key}");
    }
    assert_eq!(second.json()["counts"]["up_to_date"], 4);
    assert_eq!(second.json()["counts"]["done"], 0);
}

#[test]
fn an_instance_whose_task_folder_was_deleted_runs_again() {
    let f = four().apply().run();
    let run = f.runs("b").pop().expect("b ran");
    let task = run.ancestors().nth(2).expect("the task folder");
    assert!(task.join("TASK.md").is_file(), "{}", task.display());
    std::fs::remove_dir_all(task).unwrap();
    let second = again(&f, &[]);
    assert_eq!(second.state("b").1, "exit_zero");
    assert_eq!(second.state("a").1, "up_to_date");
    assert_eq!(&calls(&f)[4..], ["b 1"]);
}

#[test]
fn an_edited_input_reruns_exactly_what_depends_on_it() {
    let f = four().apply().run();
    let second = f.then().file("src/deep/lib.rs", "fn y() {}").apply().run();
    assert_eq!(second.state("a").1, "up_to_date");
    assert_eq!(second.state("c").1, "up_to_date");
    assert_eq!(second.state("b").1, "exit_zero");
    assert_eq!(second.state("d").1, "exit_zero");
    assert_eq!(&calls(&f)[4..], ["b 1", "d 1"]);

    // A new file matching the glob is a change too; one that does not match is not.
    f.then()
        .file("src/new.rs", "")
        .file("src/notes.txt", "")
        .apply()
        .run();
    assert_eq!(&calls(&f)[6..], ["b 1", "d 1"]);
}

#[test]
fn a_changed_param_or_prompt_reruns_its_node_and_its_dependents_with_the_old_answers_kept() {
    let f = four().apply().run();
    let second = again(&f, &["--set", "n=2"]);
    assert_eq!(second.state("a").1, "exit_zero");
    assert_eq!(second.state("c").1, "exit_zero");
    assert_eq!(second.state("b").1, "up_to_date");
    assert_eq!(&calls(&f)[4..], ["a 1", "c 1"]);
    // c read a's new answer; an up-to-date a gives its answer from the store.
    let third = f
        .then()
        .workflow(format!(
            "{AGENTS}\n{}",
            FOUR.replace("prompt = \"d\"", "prompt = \"d2\"")
        ))
        .apply()
        .args(["--set", "n=2"])
        .run();
    assert_eq!(third.state("d").1, "exit_zero");
    assert_eq!(&calls(&f)[6..], ["d 1"]);
}

#[test]
fn an_up_to_date_answer_is_given_to_a_dependent_that_reruns() {
    let f = four().apply().run();
    let second = again(&f, &["--force=c"]);
    assert_eq!(second.state("a").1, "up_to_date");
    let run = second.runs("c").pop().unwrap();
    let prompt = std::fs::read_to_string(run.join("prompt.md")).unwrap();
    let after = prompt.split("c after").nth(1).unwrap();
    assert!(after.contains("a: 1"), "{prompt}");
}

#[test]
fn force_reruns_the_named_nodes_and_their_dependents_or_everything() {
    let f = four().apply().run();
    again(&f, &["--force=b"]);
    assert_eq!(&calls(&f)[4..], ["b 1", "d 1"]);
    again(&f, &["--force"]);
    assert_eq!(calls(&f).len(), 10);
    f.then()
        .apply()
        .arg("--force=nope")
        .status(2)
        .stderr_has("--force nope: no node or instance has that name")
        .run();
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
    // The keeper ends the agent once conductor is gone.
    let records = f.project_records();
    records
        .iter()
        .find(|r| r["type"] == "WORKFLOW_START")
        .map(|r| r["meta"]["apply_id"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn after_sigkill_apply_continues_the_same_apply_and_resumes_the_interrupted_loop() {
    let test = flow(RESUMABLE);
    let first_id = kill_in_b(&test);
    let f = test.file("go", "").apply().run();
    assert_eq!(
        f.json()["apply_id"],
        first_id.as_str(),
        "the same apply goes on"
    );
    // a is not run again; b resumes after its one completed iteration (the
    // killed one does not count, so it is run again as iteration 2).
    assert_eq!(calls(&f), ["a 1", "b 1", "b 2", "b 2", "c 1"]);
    assert_eq!(f.state("a").1, "up_to_date");
    assert_eq!(f.state("b"), ("done".into(), "done_file".into(), 2));
    assert_eq!(f.runs("b").len(), 3, "one folder per run, none overwritten");
    let starts: Vec<_> = f
        .project_records()
        .into_iter()
        .filter(|r| r["type"] == "WORKFLOW_START")
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[1]["meta"]["resumed"], "true");
    assert_eq!(starts[1]["meta"]["apply_id"], first_id.as_str());
}

/// Every run-info.yaml under `dir` whose path names node b's task.
fn b_records(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            found.extend(b_records(&path));
        } else if path.ends_with("run-info.yaml") && path.to_string_lossy().contains("-b-") {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn every_run_a_power_loss_left_running_is_finalised_by_the_next_apply() {
    // A loop's records are made durable once a second (docs/performance.md,
    // "Durability"): a power loss can take back the terminal record of an
    // earlier run than the last, which then reads `running` again.
    let test = flow(RESUMABLE);
    kill_in_b(&test);
    let records = b_records(test.path());
    assert_eq!(records.len(), 2, "{records:?}");
    let written = std::fs::read_to_string(&records[0]).unwrap();
    let lost = written
        .lines()
        .map(|l| {
            if l.starts_with("status:") {
                "status: running"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&records[0], lost).unwrap();
    let f = test.file("go", "").apply().run();
    for record in b_records(f.path()) {
        let info = crate::apply_support::run_info(record.parent().unwrap());
        assert_ne!(info["status"], "running", "{}", record.display());
    }
    let first = crate::apply_support::run_info(records[0].parent().unwrap());
    assert_eq!(first["status"], "failed");
    assert_eq!(f.state("b").0, "done");
}

#[test]
fn a_done_left_by_an_interrupted_iteration_is_cleared_on_resume_not_credited() {
    // b's first call writes DONE and hangs until conductor is killed; the
    // resumed loop must not take that DONE for its own.
    let test = flow(
        r#"
[agents.slow]
kind = "command"
command = ["sh", "-c", """
echo "$CONDUCTOR_INSTANCE $CONDUCTOR_ITERATION" >> calls.log
if [ ! -e hung ]; then touch "$JRUN_TASK_FOLDER/DONE" hung hanging; exec sleep 60; fi
"""]
[nodes.a]
prompt = "a"
[nodes.b]
needs = ["a"]
agent = "slow"
prompt = "b"
stop = { done_file = true, exit_zero = false, max_iterations = 2 }
"#,
    );
    kill_in_b(&test);
    let f = test.apply().status(1).run();
    assert_eq!(calls(&f), ["a 1", "b 1", "b 1", "b 2"]);
    assert_eq!(f.state("b"), ("failed".into(), "max_iterations".into(), 2));
    let bus: String = f
        .files_named("TASK-MESSAGE-BUS.md")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("-b-"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        bus.contains("DONE was found on resume"),
        "the clearing is recorded on the task bus:\n{bus}"
    );
}

#[test]
fn fresh_starts_a_new_apply_with_interrupted_loops_from_iteration_one() {
    let test = flow(RESUMABLE);
    let first_id = kill_in_b(&test);
    let f = test.file("go", "").apply().arg("--fresh").run();
    assert_ne!(f.json()["apply_id"], first_id.as_str());
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
    )
    .apply()
    .status(1)
    .run();
    assert_eq!(f.state("b").1, "max_iterations");
    let second = f.then().file("fixed", "").apply().run();
    assert_eq!(
        second.json()["apply_id"],
        f.json()["apply_id"],
        "a failed apply is continued"
    );
    assert_eq!(calls(&f), ["a 1", "b 1", "b 2", "b 1"]);
    assert_eq!(second.state("b"), ("done".into(), "exit_zero".into(), 1));
}

#[test]
fn a_torn_last_record_on_the_project_bus_does_not_stop_the_next_apply() {
    let f = four().apply().run();
    let bus = f.root().join("inc/PROJECT-MESSAGE-BUS.md");
    let mut text = std::fs::read(&bus).unwrap();
    // A power cut in the middle of an append: half a header, no newline.
    text.extend_from_slice(b"---\nmsg_id: MSG-2026");
    std::fs::write(&bus, text).unwrap();
    std::fs::remove_dir_all(f.root().join("inc/.index")).unwrap();
    assert_eq!(again(&f, &[]).json()["counts"]["up_to_date"], 4);
    assert_eq!(again(&f, &["--force=a"]).state("a").1, "exit_zero");
    let read = f
        .then()
        .args(["bus", "read", "--json", "--bus"])
        .arg(&bus)
        .run();
    assert!(
        read.stdout
            .lines()
            .last()
            .unwrap()
            .contains("WORKFLOW_STOP")
    );
}

/// `conductor plan flow.toml` with the folder's runs root.
fn plan(test: Test, extra: &[&str]) -> Ran {
    test.args(["plan", "flow.toml"])
        .with_root()
        .args(extra)
        .run()
}

/// The `state:` line of each instance in a plan.
fn states(plan: &Ran) -> Vec<String> {
    plan.stdout
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
    let f = plan(four(), &[]);
    assert_eq!(states(&f), ["new", "new", "new", "new"]);
    f.then().apply().run();
    assert_eq!(states(&plan(f.then(), &[])), ["up to date"; 4]);
    let edited = f.then().file("src/deep/lib.rs", "fn y() {}");
    // Plan order is a, b, c, d.
    assert_eq!(
        states(&plan(edited, &["--set", "n=5"])),
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
    )
    .file("notes/log.txt", "start\n")
    .apply()
    .run();
    let second = again(&f, &[]);
    assert_eq!(calls(&f), ["w 1", "after 1"], "{:#}", second.json());
    // A person's edit is a change.
    f.then().file("notes/log.txt", "edited\n").apply().run();
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
    )
    .apply()
    .run();
    assert_eq!(calls(&f).len(), 4);
    let second = again(&f, &[]);
    assert_eq!(calls(&f).len(), 4, "{:#}", second.json());
    assert_eq!(second.json()["counts"]["up_to_date"], 4);
    again(&f, &["--force=work[y]"]);
    assert_eq!(&calls(&f)[4..], ["work[y] 1", "join 1"]);
}

#[test]
fn status_and_logs_show_an_up_to_date_instance_from_its_earlier_run() {
    let f = four().apply().run();
    again(&f, &[]);
    let status = f
        .then()
        .args(["status", "--workflow", "flow.toml"])
        .with_root()
        .run();
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.starts_with('c') && l.contains("exit_zero (up to date)")),
        "{}",
        status.stdout
    );
    f.then()
        .args(["logs", "c", "--workflow", "flow.toml"])
        .with_root()
        .stdout_has("c after")
        .run();
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
    )
    .file("a.txt", "a")
    .file("b.txt", "b")
    .apply()
    .run();
    let second = again(&f, &[]);
    assert_eq!(second.keys(), ["each[a.txt]", "each[b.txt]"]);
    assert_eq!(second.json()["counts"]["up_to_date"], 2);
}

#[test]
fn a_prompt_is_stale_when_an_environment_variable_or_a_template_it_reads_changes() {
    // `env.TARGET` is read by name; the part by a name computed from a param.
    let f = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[params]
part = { type = "string", default = "a" }
[agents.a]
kind = "command"
command = ["cat"]
[nodes.n]
agent = "a"
stop = { exit_zero = true }
prompt = '''for {{ env.TARGET }}: {% include "parts/" ~ params.part ~ ".md" %}'''
"#,
        )
        .file("parts/a.md", "part A")
        .apply()
        .env("TARGET", "one")
        .run();
    assert_eq!(f.state("n").1, "exit_zero");
    let same = f.then().apply().env("TARGET", "one").run();
    assert_eq!(same.state("n").1, "up_to_date", "{}", same.explain());
    let changed = f.then().apply().env("TARGET", "two").run();
    assert_eq!(changed.state("n").1, "exit_zero", "{}", changed.explain());
    let same = f.then().apply().env("TARGET", "two").run();
    assert_eq!(same.state("n").1, "up_to_date");
    let edited = f
        .then()
        .file("parts/a.md", "part A, edited")
        .apply()
        .env("TARGET", "two")
        .run();
    assert_eq!(edited.state("n").1, "exit_zero", "{}", edited.explain());
    assert!(edited.output("n").contains("for two: part A, edited"));
}

#[test]
fn an_apply_that_changes_a_nodes_inputs_says_that_node_runs_again_next_time() {
    // The planner reads `notes/*.md`; the worker it feeds writes one.
    let f = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.a]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; if [ \"$CONDUCTOR_NODE\" = work ]; then echo new > notes/b.md; fi; echo ok"]
[defaults]
agent = "a"
stop = { exit_zero = true }
[nodes.plan]
prompt = "plan"
inputs = ["notes/*.md"]
[nodes.work]
needs = ["plan"]
prompt = "work"
"#,
        )
        .file("notes/a.md", "a")
        .apply()
        .stderr_has("plan: will run again on the next apply: this apply changed its inputs (notes/b.md)")
        .run();
    let bus = std::fs::read_to_string(f.root().join("t/PROJECT-MESSAGE-BUS.md")).unwrap();
    assert!(bus.contains("inputs_changed: notes/b.md"), "{bus}");
    // As said: the next apply runs it, and `plan` says why first.
    f.then()
        .args(["plan", "flow.toml"])
        .with_root()
        .stdout_has("input notes/b.md")
        .run();
    let next = f.then().apply().run();
    assert_eq!(next.state("plan").1, "exit_zero");
}
