//! `conductor status` and `conductor logs` after an apply: the latest
//! apply's instances, an instance's agent output and following it live.

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
