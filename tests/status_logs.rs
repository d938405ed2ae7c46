//! `conductor status` and `conductor logs` after an apply: the latest
//! apply's instances, an instance's agent output and following it live.
//! The full text of both, for the hello example, is pinned by snapshots
//! in which what changes from run to run (times, ids, the temporary runs
//! root) is replaced by a placeholder of the same meaning.
//!
//! After changing what `status` or `logs` prints on purpose, review the new
//! output with `INSTA_UPDATE=always cargo test status_logs::` and read the
//! changed `.snap` files before committing them.

use std::path::Path;
use std::time::Duration;

use crate::apply_support::{one_node, wait_for};
use crate::test_builder::Test;

#[test]
fn status_and_logs_show_the_latest_apply() {
    let applied = Test::new()
        .workflow(one_node(
            r#""--done-after", "2", "--say", "the agent's words""#,
            "{}",
        ))
        .apply()
        .run();
    let status = applied.then().args(["status", "--json"]).with_root().run();
    let v = status.json();
    assert_eq!(v["state"], "done");
    assert_eq!(v["instances"][0]["instance"], "n");
    assert_eq!(v["instances"][0]["iterations"], 2);
    assert_eq!(v["instances"][0]["stop_reason"], "done_file");
    applied
        .then()
        .args(["logs", "n"])
        .with_root()
        .stdout("the agent's words\n")
        .run();
    applied
        .then()
        .args(["logs", "nope"])
        .with_root()
        .failure()
        .stderr_has("instances: n")
        .run();
}

#[test]
fn logs_follow_streams_until_the_instance_ends() {
    let test = Test::new().workflow(one_node(r#""--done-after", "2", "--sleep", "300ms""#, "{}"));
    let mut apply = test.spawn(&[]);
    let bus = test.root().join("t/PROJECT-MESSAGE-BUS.md");
    wait_for("the node to start", || {
        std::fs::read_to_string(&bus)
            .unwrap_or_default()
            .contains("NODE_START")
    });
    let logs = test
        .args(["logs", "n", "-f"])
        .with_root()
        .timeout(Duration::from_secs(30))
        .run();
    assert!(apply.wait().unwrap().success());
    let followed = &logs.stdout;
    assert!(
        followed.contains("fake agent answered call 1")
            && followed.contains("fake agent answered call 2"),
        "{followed}"
    );
    assert_eq!(followed.matches("==> ").count(), 2, "{followed}");
}

/// Snapshot settings that replace what differs between two applies of the
/// same workflow. Each pattern matches only the exact shape of its id or
/// time, so a change of that shape still fails the snapshot.
fn redacted(root: &Path) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_omit_expression(true);
    settings.add_filter(&regex::escape(&root.display().to_string()), "[ROOT]");
    // task-<apply start>-<instance slug>-<hash of apply id and instance>
    settings.add_filter(
        r"task-\d{8}-\d{6}-([a-z0-9-]+)-[0-9a-f]{16}\b",
        "task-[STAMP]-$1-[HASH]",
    );
    // apply-<start>-<hash of the pid and the time>
    settings.add_filter(r"apply-\d{8}-\d{6}-[0-9a-f]{6}\b", "apply-[STAMP]-[HASH]");
    // <run number in its task>-<start>: the number stays, it is stable.
    settings.add_filter(r"\b(\d{6})-\d{8}-\d{6}\b", "$1-[STAMP]");
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z",
        "[TIMESTAMP]",
    );
    settings
}

#[test]
fn status_and_logs_of_the_hello_example_match_their_snapshots() {
    let applied = Test::in_repo()
        .args(["apply", "examples/hello/workflow.toml"])
        .with_root()
        .run();
    let mut settings = redacted(&applied.root());
    for (name, args) in [
        ("status", &["status"][..]),
        ("status_json", &["status", "--json"]),
        ("logs", &["logs", "summary"]),
        ("logs_of_an_item", &["logs", "greet[world]"]),
        ("logs_follow", &["logs", "--follow", "summary"]),
    ] {
        let ran = applied.then().args(args).with_root().run();
        settings.set_description(format!("conductor {} (hello applied)", args.join(" ")));
        settings.bind(|| insta::assert_snapshot!(name, ran.stdout));
    }
}

#[test]
fn logs_of_an_unknown_instance_names_each_instance_once() {
    let applied = Test::in_repo()
        .args(["apply", "examples/hello/workflow.toml"])
        .with_root()
        .run();
    let ran = applied
        .then()
        .args(["logs", "nope"])
        .with_root()
        .failure()
        .stderr_has("no instance `nope` has started")
        .run();
    let listed = ran
        .stderr
        .split("instances: ")
        .nth(1)
        .unwrap_or_default()
        .trim();
    let mut names: Vec<&str> = listed.split(", ").collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["greet[conductor]", "greet[world]", "summary"],
        "{}",
        ran.stderr
    );
}

#[test]
fn status_and_logs_say_which_workflow_they_show_and_logs_finds_an_instances_workflow() {
    // `first` has instance `a`; `second`, applied after it, has `b`.
    let flow = |name: &str, node: &str| {
        one_node(r#""--done-after", "1", "--say", "words""#, "{}")
            .replace("name = \"t\"", &format!("name = \"{name}\""))
            .replace("[nodes.n]", &format!("[nodes.{node}]"))
    };
    let first = Test::new()
        .workflow(flow("first", "a"))
        .file("second.toml", flow("second", "b"))
        .apply()
        .run();
    let second = first
        .then()
        .args(["apply", "second.toml"])
        .with_root()
        .run();
    second
        .then()
        .args(["status"])
        .with_root()
        .stdout_has("second (")
        .stderr_has("note: showing workflow `second`; also applied under this root: first")
        .run();
    // `logs a` finds the workflow that ran `a`, and says which it shows.
    second
        .then()
        .args(["logs", "a"])
        .with_root()
        .stdout("words\n")
        .stderr_has("showing workflow `first`")
        .run();
    // A --workflow that is no file says so.
    second
        .then()
        .args(["status", "--workflow", "nope.toml"])
        .with_root()
        .status(3)
        .stderr_has("nope.toml: no such file")
        .run();
    // An up-to-date instance keeps how its result was made.
    let again = second
        .then()
        .args(["apply", "second.toml"])
        .with_root()
        .run();
    again
        .then()
        .args(["status"])
        .with_root()
        .stdout_has("done_file (up to date)")
        .run();
    let status = again.then().args(["status", "--json"]).with_root().run();
    let json = status.json();
    assert_eq!(json["instances"][0]["stop_reason"], "up_to_date");
    assert_eq!(json["instances"][0]["result_stop_reason"], "done_file");
}

/// An apply whose one agent, of `kind`, plays back the recorded stream of
/// that real CLI (tests/fixtures/streams, recorded by `agents_real` with
/// `CONDUCTOR_RECORD_STREAMS`).
fn played_back(kind: &str) -> crate::test_builder::Ran {
    let stream = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/streams/{kind}.jsonl")),
    )
    .unwrap();
    Test::new()
        .workflow(format!(
            "version = 1\nname = \"t\"\n[agents.cli]\nkind = \"{kind}\"\ncommand = [\"sh\", \"-c\", \"cat >/dev/null; cat stream.jsonl\", \"sh\"]\n\
             [nodes.n]\nagent = \"cli\"\nprompt = \"p\"\nstop = {{ exit_zero = true }}\n"
        ))
        .file("stream.jsonl", stream)
        .apply()
        .run()
}

#[test]
fn logs_reads_each_real_clis_stream_as_a_transcript() {
    for kind in ["claude", "codex", "gemini"] {
        let ran = played_back(kind);
        let logs = ran.then().args(["logs", "n"]).with_root().run();
        insta::assert_snapshot!(format!("transcript_{kind}"), logs.stdout);
        // --raw prints the stream as recorded.
        let raw = ran.then().args(["logs", "n", "--raw"]).with_root().run();
        assert!(raw.stdout.starts_with('{'), "{}", raw.stdout);
        assert!(raw.stdout.contains("\"type\""), "{}", raw.stdout);
    }
}

#[test]
fn logs_without_an_instance_lists_the_instances_and_their_states() {
    let applied = Test::new()
        .workflow(one_node(r#""--done-after", "1""#, "{}"))
        .apply()
        .run();
    applied
        .then()
        .args(["logs"])
        .with_root()
        .stdout_has("instance")
        .stdout_has("n ")
        .stdout_has("done_file")
        .stderr_has("conductor logs KEY")
        .run();
}

#[test]
fn status_of_a_running_instance_says_what_it_does_and_why_it_goes_on() {
    // Iteration 1 ends without DONE; iteration 2 runs on.
    let test = Test::new().workflow(crate::apply_support::one_node_command(
        r#""sh", "-c", "cat >/dev/null; if [ $(ls \"$JRUN_TASK_FOLDER/runs\" | wc -l) -ge 2 ]; then sleep 20; fi""#,
        "{ max_iterations = 3 }",
    ));
    let mut apply = test.spawn(&[]);
    let mut shown = String::new();
    wait_for(
        "status to show the second iteration running, and why the first did not finish",
        || {
            let out = crate::support::conductor()
                .current_dir(test.path())
                .args(["status", "--root"])
                .arg(test.root())
                .output()
                .unwrap();
            shown = String::from_utf8_lossy(&out.stdout).into_owned();
            shown.contains("iteration 2 running for") && shown.contains("last iteration: no DONE")
        },
    );
    let _ = apply.kill();
    let _ = apply.wait();
}

#[test]
fn logs_follow_typed_as_an_apply_starts_follows_that_apply_not_the_one_before() {
    let test = Test::new().workflow(crate::apply_support::one_node_command(
        r#""sh", "-c", "cat >/dev/null; echo \"answer of $CONDUCTOR_APPLY_ID\"; touch \"$JRUN_TASK_FOLDER/DONE\"""#,
        "{}",
    ));
    let first = test.spawn(&[]).wait_with_output().unwrap();
    assert!(first.status.success());
    // An apply of the workflow is starting: it holds the workflow's lock,
    // its first record is not written yet.
    let project = test.root().join("t");
    let lock = conductor::store::live::WorkflowLock::acquire(&project, "t", "apply-starting")
        .unwrap()
        .unwrap();
    let stderr = test.path().join("logs-stderr.txt");
    let logs = std::process::Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(test.path())
        .args(["logs", "n", "-f", "--root"])
        .arg(test.root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    wait_for("logs to wait for the starting apply", || {
        std::fs::read_to_string(&stderr)
            .unwrap_or_default()
            .contains("waiting for the apply that is starting (apply-starting")
    });
    lock.release();
    // Forced: an up-to-date instance would show the first apply's run.
    let second = test.spawn(&["--force=n"]).wait_with_output().unwrap();
    assert!(second.status.success());
    let followed = logs.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&followed.stdout);
    let bus = std::fs::read_to_string(project.join("PROJECT-MESSAGE-BUS.md")).unwrap();
    let ids: Vec<&str> = bus
        .lines()
        .filter_map(|l| l.trim().strip_prefix("apply_id: "))
        .collect();
    let (old, new) = (ids[0], ids[ids.len() - 1]);
    assert_ne!(old, new);
    assert!(shown.contains(&format!("answer of {new}")), "{shown}");
    assert!(!shown.contains(&format!("answer of {old}")), "{shown}");
}

#[test]
fn status_of_a_workflow_with_a_required_param_needs_no_set() {
    // Which workflow a file is does not depend on the params it needs.
    Test::in_repo()
        .args(["status", "--workflow", "workflows/session.toml"])
        .with_root()
        .status(3)
        .stderr_has("no apply found")
        .stderr_lacks("not a valid workflow")
        .run();
}

#[test]
fn status_shows_queued_and_waiting_instances_and_what_they_wait_for() {
    let test = Test::new().workflow(
        r#"version = 1
name = "t"
[agents.slow]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; sleep 20"]
[defaults]
agent = "slow"
stop = { exit_zero = true }
[nodes.a]
prompt = "p"
[nodes.b]
needs = ["a"]
prompt = "p"
[nodes.c]
prompt = "p"
"#,
    );
    let mut apply = test.spawn(&["--max-parallel", "1"]);
    // Rows of `status`: an instance's line and the detail line under it.
    let row = |shown: &str, key: &str| {
        shown
            .lines()
            .position(|l| l.starts_with(&format!("{key} ")))
            .map(|i| shown.lines().skip(i).take(2).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    };
    let mut shown = String::new();
    wait_for(
        "status to show a running, b waiting for a, c queued",
        || {
            let out = crate::support::conductor()
                .current_dir(test.path())
                .args(["status", "--workflow", "flow.toml", "--root"])
                .arg(test.root())
                .output()
                .unwrap();
            shown = String::from_utf8_lossy(&out.stdout).into_owned();
            row(&shown, "a").contains("running")
                && row(&shown, "b").contains("waiting for a")
                && row(&shown, "c").contains("queued")
        },
    );
    let _ = apply.kill();
    let _ = apply.wait();
    assert!(row(&shown, "b").contains("waiting"), "{shown}");
}
