//! The wall clock jumping backwards, moved for real through the test clock
//! (`CONDUCTOR_TEST_CLOCK`, src/clock.rs) while an apply runs: stamps go
//! back, and nothing that orders or identifies records, runs or applies
//! follows them.

use std::collections::HashSet;
use std::path::Path;

use crate::apply_support::{Flow, one_node_command, run_info, st, state};
use crate::support::{conductor, stdout};

/// Each call counts itself, posts to its bus before and after moving the
/// clock (a day back on call 2, when `clock` says so), and is done on call 4.
fn workflow(bin: &Path, clock: &Path) -> String {
    let script = format!(
        r#"n=$(( $(cat "$JRUN_TASK_FOLDER/calls" 2>/dev/null || echo 0) + 1 )); echo $n > "$JRUN_TASK_FOLDER/calls"; {bin} bus post --type PROGRESS --body "before $n" >/dev/null; if [ $n = 2 ]; then cat {clock}.jump > {clock}; fi; {bin} bus post --type PROGRESS --body "after $n" >/dev/null; echo "call $n of $(cat {clock}.marker)"; if [ $n = 4 ]; then touch "$JRUN_TASK_FOLDER/DONE"; fi"#,
        bin = bin.display(),
        clock = clock.display(),
    );
    one_node_command(
        &format!(r#""sh", "-c", {}"#, serde_json::to_string(&script).unwrap()),
        "{ done_file = true, max_iterations = 6 }",
    )
}

/// `apply --json` under the test clock, which must succeed; its summary.
fn apply(flow: &Flow, clock: &Path, extra: &[&str]) -> serde_json::Value {
    let out = flow
        .command(extra)
        .env("CONDUCTOR_TEST_CLOCK", clock)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ts(record: &serde_json::Value) -> jiff::Timestamp {
    record["ts"].as_str().unwrap().parse().unwrap()
}

fn progress(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["type"] == "PROGRESS")
        .map(|r| r["body"].as_str().unwrap().trim().to_string())
        .collect()
}

#[test]
fn a_wall_clock_jumping_back_mid_apply_moves_only_the_stamps() {
    let bin = assert_cmd::cargo::cargo_bin("conductor");
    let scratch = tempfile::tempdir().unwrap();
    let clock = scratch.path().join("clock");
    std::fs::write(&clock, "0").unwrap();
    std::fs::write(clock.with_extension("jump"), "-86400").unwrap();
    let flow = Flow::new(&workflow(&bin, &clock));
    std::fs::write(clock.with_extension("marker"), "the first apply").unwrap();

    let summary = apply(&flow, &clock, &[]);
    assert_eq!(state(&summary, "n"), st("done", "done_file", 4));

    // The task bus keeps file order; the stamps show the day going back.
    let task = flow.records("TASK-MESSAGE-BUS.md");
    let expected: Vec<String> = (1..=4)
        .flat_map(|n| [format!("before {n}"), format!("after {n}")])
        .collect();
    assert_eq!(progress(&task), expected);
    let at = |body: &str| {
        task.iter()
            .position(|r| r["type"] == "PROGRESS" && r["body"].as_str().unwrap().trim() == body)
            .unwrap()
    };
    let jump = ts(&task[at("before 2")]) - ts(&task[at("after 2")]);
    assert!(
        jump.as_hours() >= 23,
        "the clock did not go back a day: {jump}"
    );

    // Ids stay unique across both buses, and a cursor taken before the
    // jump gives exactly the records after it, in file order.
    let project = flow.project_records();
    let ids: Vec<&str> = task
        .iter()
        .chain(&project)
        .map(|r| r["msg_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    let bus = flow.files_named("TASK-MESSAGE-BUS.md").remove(0);
    let cursor = task[at("before 2")]["msg_id"].as_str().unwrap();
    let since = conductor()
        .args(["bus", "read", "--json", "--since", cursor, "--bus"])
        .arg(&bus)
        .output()
        .unwrap();
    let after: Vec<serde_json::Value> = stdout(&since)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(after, task[at("before 2") + 1..].to_vec());

    // Run folders sort in the order the runs happened, though the third
    // started "before" the second.
    let runs: Vec<_> = flow
        .files_named("run-info.yaml")
        .into_iter()
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    assert_eq!(runs.len(), 4);
    let calls: Vec<String> = runs
        .iter()
        .map(|r| std::fs::read_to_string(r.join("agent-stdout.txt")).unwrap())
        .collect();
    assert_eq!(
        calls,
        (1..=4)
            .map(|n| format!("call {n} of the first apply\n"))
            .collect::<Vec<_>>()
    );
    let started = |i: usize| -> jiff::Timestamp {
        run_info(&runs[i])["start_time"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(started(2) < started(1), "the third run is stamped earlier");

    // A second apply, stamped a day before the first began, is the latest:
    // status and logs show it, and it overwrote nothing.
    std::fs::write(&clock, "-172800").unwrap();
    std::fs::write(clock.with_extension("marker"), "the second apply").unwrap();
    let second = apply(&flow, &clock, &["--force"]);
    assert_ne!(second["apply_id"], summary["apply_id"]);
    let status = conductor()
        .args(["status", "--json", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["apply_id"], second["apply_id"], "{status:#}");
    let logs = conductor()
        .args(["logs", "n", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    assert_eq!(stdout(&logs), "call 4 of the second apply\n");
    assert_eq!(flow.files_named("run-info.yaml").len(), 8);
    for run in &runs {
        assert!(
            std::fs::read_to_string(run.join("agent-stdout.txt"))
                .unwrap()
                .ends_with("of the first apply\n")
        );
    }
}
