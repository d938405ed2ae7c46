//! Process ownership with real processes and signals: timeouts stop the
//! whole group (grandchildren too, SIGKILL after the grace period), Ctrl-C
//! stops gracefully and is recorded, and agents die with a killed conductor.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::apply_support::{Flow, alive, one_node, one_node_command, pids, st, state, wait_for};
use crate::test_builder::Test;

pub(crate) fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_timeout_kills_the_grandchild_and_a_deaf_agent() {
    let test = Test::new()
        .workflow(one_node(
            r#""--sleep", "30s", "--grandchild", "30s", "--ignore-sigterm", "--pid-file", "pids""#,
            r#"{ timeout = "500ms" }"#,
        ))
        .apply()
        .status(1);
    let started = Instant::now();
    let ran = test.run();
    assert_eq!(ran.state("n"), st("failed", "timeout", 1));
    // The agent ignored SIGTERM: SIGKILL came after the 300 ms grace.
    assert!(started.elapsed() < Duration::from_secs(15));
    let pids = pids(&ran.path().join("pids"));
    assert_eq!(
        pids.len(),
        2,
        "the agent and its grandchild wrote their pids"
    );
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived its timeout");
    }
}

#[test]
fn a_grandchild_left_behind_by_a_finished_agent_is_cleaned_up() {
    let ran = Test::new()
        .workflow(one_node(
            r#""--grandchild", "30s", "--pid-file", "pids""#,
            "{ exit_zero = true }",
        ))
        .apply()
        .run();
    assert_eq!(ran.state("n"), st("done", "exit_zero", 1));
    for pid in pids(&ran.path().join("pids")) {
        assert!(!alive(pid), "process {pid} outlived its run");
    }
}

#[test]
fn ctrl_c_stops_gracefully_records_it_and_leaves_nothing_running() {
    let flow = Flow::new(&one_node(
        r#""--sleep", "30s", "--grandchild", "30s", "--pid-file", "pids""#,
        "{}",
    ));
    let mut child = flow.spawn(&["--json", "--grace", "2s"]);
    let pid_file = flow.path().join("pids");
    wait_for("the agent to start", || pids(&pid_file).len() == 2);
    signal(child.id(), "-INT");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    for pid in pids(&pid_file) {
        assert!(!alive(pid), "process {pid} outlived Ctrl-C");
    }
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        text.push_str(&line.unwrap());
    }
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(summary["status"], "interrupted");
    assert_eq!(state(&summary, "n"), st("failed", "interrupted", 1));
    let records = flow.project_records();
    let last = records.last().unwrap();
    assert_eq!(last["type"], "WORKFLOW_STOP");
    assert_eq!(last["meta"]["status"], "interrupted");
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "NODE_FAILED" && r["meta"]["stop_reason"] == "interrupted")
    );
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    let flow = Flow::new(&one_node(
        r#""--sleep", "60s", "--ignore-sigterm", "--pid-file", "pids""#,
        "{}",
    ));
    let mut child = flow.spawn(&["--grace", "60s"]);
    let pid_file = flow.path().join("pids");
    wait_for("the agent to start", || pids(&pid_file).len() == 1);
    // Wait for the agent to say SIGTERM is ignored, as the tests of the fake agent do.
    let task_stderr = || {
        flow.files()
            .into_iter()
            .any(|(p, t)| p.ends_with("agent-stderr.txt") && t.contains("ignored from now on"))
    };
    wait_for("the agent to ignore SIGTERM", task_stderr);
    signal(child.id(), "-INT");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    signal(child.id(), "-INT");
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the second Ctrl-C waited for the grace"
    );
    assert_eq!(status.code(), Some(130));
    for pid in pids(&pid_file) {
        assert!(!alive(pid));
    }
}

#[test]
fn sigterm_stops_gracefully_with_exit_143() {
    let flow = Flow::new(&one_node(r#""--sleep", "30s", "--pid-file", "pids""#, "{}"));
    let mut child = flow.spawn(&[]);
    let pid_file = flow.path().join("pids");
    wait_for("the agent to start", || pids(&pid_file).len() == 1);
    signal(child.id(), "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(!alive(pids(&pid_file)[0]));
}

#[test]
fn agents_die_with_a_conductor_killed_by_sigkill() {
    let flow = Flow::new(&one_node(
        r#""--sleep", "60s", "--grandchild", "60s", "--pid-file", "pids""#,
        "{}",
    ));
    let mut child = flow.spawn(&[]);
    let pid_file = flow.path().join("pids");
    wait_for("the agent to start", || pids(&pid_file).len() == 2);
    signal(child.id(), "-KILL");
    let _ = child.wait();
    for pid in pids(&pid_file) {
        wait_for(&format!("process {pid} to die with conductor"), || {
            !alive(pid)
        });
    }
}

#[test]
fn a_second_apply_of_the_same_workflow_refuses_while_the_first_runs() {
    let test = Test::new().workflow(one_node(r#""--sleep", "30s", "--pid-file", "pids""#, "{}"));
    let mut first = test.spawn(&[]);
    let pid_file = test.path().join("pids");
    wait_for("the first apply's agent to start", || {
        pids(&pid_file).len() == 1
    });
    let second = test
        .apply()
        .status(3)
        .stderr_has("workflow `t` is already being applied")
        .stderr_has(format!("(pid {})", first.id()))
        .run();
    signal(first.id(), "-TERM");
    assert_eq!(first.wait().unwrap().code(), Some(143));
    // Once the first has ended, the workflow can be applied again.
    second
        .then()
        .workflow(one_node(r#""--done-after", "1""#, "{}"))
        .apply()
        .run();
}

/// Peak resident memory of a live process, in KiB (`VmHWM`).
fn peak_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Applies a one-node workflow whose agent prints `bytes` zero bytes;
/// conductor's peak memory in KiB, polled while it runs.
fn peak_with_output(bytes: u64) -> u64 {
    let flow = Flow::new(&one_node_command(
        &format!(r#""head", "-c", "{bytes}", "/dev/zero""#),
        "{ exit_zero = true, max_iterations = 1 }",
    ));
    let mut child = flow.spawn(&[]);
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.wait().unwrap().success());
    let stdout = flow
        .files_named("agent-stdout.txt")
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(std::fs::metadata(stdout).unwrap().len(), bytes);
    assert!(peak > 0, "the peak was read");
    peak
}

#[test]
fn an_agent_flooding_256_mib_of_output_leaves_conductors_memory_flat() {
    // Agents' output goes to files, never through conductor's memory; only
    // the answer templates see is read back, capped at 1 MiB.
    let quiet = peak_with_output(10);
    let flood = peak_with_output(256 << 20);
    assert!(
        flood < quiet + 16 * 1024,
        "conductor peaked at {flood} KiB for 256 MiB of output, {quiet} KiB for 10 bytes"
    );
}

#[test]
fn an_agent_that_closes_its_stdout_early_is_judged_like_any_other() {
    // It closes stdout, goes on working, and is done; its answer is what
    // it printed before.
    let ran = Test::new()
        .workflow(one_node_command(
            r#""sh", "-c", "echo before; exec 1>&-; sleep 0.2; touch \"$JRUN_TASK_FOLDER/DONE\"""#,
            "{ done_file = true, max_iterations = 2 }",
        ))
        .apply()
        .run();
    assert_eq!(ran.state("n"), st("done", "done_file", 1));
    let output = ran.files_named("output.md").into_iter().next().unwrap();
    assert_eq!(std::fs::read_to_string(output).unwrap(), "before\n");
}

#[test]
fn ctrl_c_during_a_success_command_is_told_and_stops_it() {
    let flow = Flow::new(&format!(
        "{}\n[success]\ncommands = [\"echo $$ > success.pid; exec sleep 300\"]\n",
        one_node(r#""--done-after", "1""#, "{}")
    ));
    let stderr = flow.path().join("stderr.txt");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(flow.path())
        .args(["apply", "flow.toml", "--grace", "2s", "--root"])
        .arg(flow.root())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let pid_file = flow.path().join("success.pid");
    wait_for("the success command to start", || {
        pids(&pid_file).len() == 1
    });
    signal(child.id(), "-INT");
    // Conductor waits for the command: it ends this soon only if Ctrl-C
    // stopped it (the command sleeps for 5 minutes otherwise).
    let mut status = None;
    wait_for("conductor to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let stderr = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{stderr}");
    assert!(
        !alive(pids(&pid_file)[0]),
        "the success command outlived Ctrl-C"
    );
    assert_eq!(
        stderr.matches("stopping: interrupted").count(),
        1,
        "{stderr}"
    );
    // Recorded like a Ctrl-C while agents run.
    assert!(
        flow.project_records()
            .iter()
            .any(|r| r["type"] == "INFO" && r["meta"]["stop_reason"] == "interrupted"),
        "{:#?}",
        flow.project_records()
    );
}

#[test]
fn a_clis_version_is_asked_once_per_binary_across_applies() {
    // A stand-in `claude` that counts how often it is asked its version.
    let flow = Flow::new("");
    let cli = flow.path().join("bin/claude");
    let script = "#!/bin/sh\nif [ \"$1\" = --version ]; then echo asked >> \"$PROBES\"; echo '9.9.9 (stand-in)'; exit 0; fi\ncat >/dev/null; touch \"$JRUN_TASK_FOLDER/DONE\"\n";
    std::fs::create_dir_all(cli.parent().unwrap()).unwrap();
    std::fs::write(&cli, script).unwrap();
    std::fs::set_permissions(&cli, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        flow.path().join("flow.toml"),
        format!(
            "version = 1\nname = \"t\"\n[agents.c]\nkind = \"claude\"\ncommand = [\"{}\"]\n\
             [nodes.n]\nagent = \"c\"\nprompt = \"p\"\n",
            cli.display()
        ),
    )
    .unwrap();
    let probes = flow.path().join("probes.txt");
    let apply = |force: bool, says: bool| {
        let mut cmd = flow.command(if force { &["--force=n"][..] } else { &[][..] });
        let out = cmd.env("PROBES", &probes).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        // The wait for a first probe is said before it starts.
        assert_eq!(
            stderr.contains("for its version (once per binary"),
            says,
            "{stderr}"
        );
        std::fs::read_to_string(&probes)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(apply(false, true), 1);
    // Another process, the same binary: not asked again.
    assert_eq!(apply(true, false), 1);
    let info = std::fs::read_to_string(flow.files_named("run-info.yaml").last().unwrap()).unwrap();
    assert!(info.contains("9.9.9 (stand-in)"), "{info}");
    // A new binary (another modification time) is asked.
    std::fs::File::options()
        .write(true)
        .open(&cli)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_mins(1))
        .unwrap();
    assert_eq!(apply(true, true), 2);
}
