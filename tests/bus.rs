//! `conductor bus post` and `bus read` against the real file system: the
//! record format, where the bus is, concurrent writers, torn records, tails
//! and `--follow`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{conductor, stderr, stdout};
use crate::test_builder::Test;

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("conductor")
}

fn post(dir: &std::path::Path, args: &[&str]) -> String {
    let out = conductor()
        .current_dir(dir)
        .env_remove("JRUN_MESSAGE_BUS")
        .args(["bus", "post"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// `conductor bus read --json ARGS` in `dir`, which must succeed; its records.
pub(crate) fn read_json(dir: &std::path::Path, args: &[&str]) -> Vec<serde_json::Value> {
    let out = conductor()
        .current_dir(dir)
        .env_remove("JRUN_MESSAGE_BUS")
        .args(["bus", "read", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bodies_round_trip_through_post_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let bodies = [
        "plain",
        "two\n---\nrecords? no, one",
        "\\---",
        "ünïcødé ✓",
        "",
        "trailing\n\n",
        "--- not a fence",
    ];
    for b in bodies {
        post(
            dir.path(),
            &["--project", "demo", "--type", "FACT", "--body", b],
        );
    }
    let msgs = read_json(dir.path(), &["--project", "demo"]);
    let got: Vec<&str> = msgs.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(got, bodies);
    assert!(
        msgs.iter()
            .all(|m| m["type"] == "FACT" && m["project_id"] == "demo")
    );
    // The file is the seed's format: the `---` body line is escaped.
    let text = std::fs::read_to_string(
        dir.path()
            .join(".conductor/runs/demo/PROJECT-MESSAGE-BUS.md"),
    )
    .unwrap();
    assert!(text.starts_with("---\nmsg_id: MSG-"), "{text}");
    assert!(text.contains("\n\\---\n"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".conductor/.gitignore")).unwrap(),
        "*\n"
    );
}

#[test]
fn the_bus_comes_from_flags_before_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let env_bus = dir.path().join("deep/new/folders/TASK-MESSAGE-BUS.md");
    let flag_bus = dir.path().join("flag.md");
    let out = conductor()
        .env("JRUN_MESSAGE_BUS", &env_bus)
        .env("JRUN_PROJECT_ID", "proj")
        .env("JRUN_TASK_ID", "task-7")
        .env("JRUN_ID", "run-3")
        .args([
            "bus",
            "post",
            "--type",
            "PROGRESS",
            "--body",
            "from an agent",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("msg_id: MSG-"));
    let out = conductor()
        .env("JRUN_MESSAGE_BUS", &env_bus)
        .args([
            "bus",
            "post",
            "--bus",
            flag_bus.to_str().unwrap(),
            "--project",
            "p2",
            "--body",
            "explicit",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env_msgs = read_json(dir.path(), &["--bus", env_bus.to_str().unwrap()]);
    assert_eq!(
        env_msgs.len(),
        1,
        "missing folders are created and only the env post went there"
    );
    assert_eq!(env_msgs[0]["task_id"], "task-7");
    assert_eq!(env_msgs[0]["run_id"], "run-3");
    assert_eq!(env_msgs[0]["project_id"], "proj");
    let flag_msgs = read_json(dir.path(), &["--bus", flag_bus.to_str().unwrap()]);
    assert_eq!(flag_msgs[0]["body"], "explicit");
}

#[test]
fn no_bus_is_a_usage_error() {
    Test::in_repo()
        .env_remove("JRUN_MESSAGE_BUS")
        .args(["bus", "post", "--body", "x"])
        .status(2)
        .stderr_has("no bus given")
        .run();
}

/// Checks that every writer's messages are all there, once, in its order.
fn assert_per_writer_order(msgs: &[serde_json::Value], writers: usize, each: usize) {
    assert_eq!(msgs.len(), writers * each);
    let mut next = vec![0usize; writers];
    for m in msgs {
        let body = m["body"].as_str().unwrap();
        let (w, i) = body.split_once(" #").unwrap_or((body, "0"));
        let w: usize = w.trim_start_matches('w').parse().unwrap();
        let i: usize = i.parse().unwrap();
        assert_eq!(i, next[w], "writer {w} out of order");
        next[w] += 1;
    }
    assert!(next.iter().all(|&n| n == each));
}

#[test]
fn sixteen_processes_append_sixteen_thousand_records() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus.md");
    let children: Vec<_> = (0..16)
        .map(|w| {
            Command::new(bin())
                .args([
                    "bus",
                    "post",
                    "--bus",
                    bus.to_str().unwrap(),
                    "--project",
                    "load",
                    "--repeat",
                    "1000",
                    "--body",
                    &format!("w{w}"),
                ])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let msgs = read_json(dir.path(), &["--bus", bus.to_str().unwrap()]);
    assert_per_writer_order(&msgs, 16, 1000);
    let ids: std::collections::HashSet<&str> =
        msgs.iter().map(|m| m["msg_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 16_000, "message ids are unique");
}

#[test]
fn concurrent_posts_from_a_shell_keep_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus.md");
    let script = format!(
        "for i in $(seq 0 49); do {} bus post --bus {} --project p --body \"w$1 #$i\" >/dev/null || exit 1; done",
        bin().display(),
        bus.display()
    );
    let children: Vec<_> = (0..8)
        .map(|w| {
            Command::new("sh")
                .args(["-c", &script, "sh", &w.to_string()])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let msgs = read_json(dir.path(), &["--bus", bus.to_str().unwrap()]);
    assert_per_writer_order(&msgs, 8, 50);
}

#[test]
fn a_torn_last_record_is_skipped_and_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus.md");
    let b = bus.to_str().unwrap();
    post(
        dir.path(),
        &["--bus", b, "--project", "p", "--body", "before"],
    );
    // A writer that died in the middle of its one write.
    let mut f = std::fs::OpenOptions::new().append(true).open(&bus).unwrap();
    std::io::Write::write_all(
        &mut f,
        b"\n---\nmsg_id: MSG-torn\nts: 2026-01-01T00:00:00Z\ntype: FA",
    )
    .unwrap();
    let msgs = read_json(dir.path(), &["--bus", b]);
    assert_eq!(msgs.len(), 1);
    post(
        dir.path(),
        &["--bus", b, "--project", "p", "--body", "after"],
    );
    let msgs = read_json(dir.path(), &["--bus", b]);
    let bodies: Vec<&str> = msgs.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["before", "after"]);
}

#[test]
fn tail_and_since_select_the_right_records() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus.md");
    let b = bus.to_str().unwrap();
    // Enough records, with long bodies, that the tail window must grow.
    let long = "x".repeat(2000);
    let out = conductor()
        .args([
            "bus",
            "post",
            "--bus",
            b,
            "--project",
            "p",
            "--repeat",
            "300",
            "--body",
            &long,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let last = read_json(dir.path(), &["--bus", b, "--tail", "100"]);
    assert_eq!(last.len(), 100);
    assert!(last[0]["body"].as_str().unwrap().ends_with(" #200"));
    assert!(last[99]["body"].as_str().unwrap().ends_with(" #299"));
    let since = last[49]["msg_id"].as_str().unwrap();
    let after = read_json(dir.path(), &["--bus", b, "--since", since]);
    assert_eq!(after.len(), 50);
    assert!(after[0]["body"].as_str().unwrap().ends_with(" #250"));
    Test::in_repo()
        .args(["bus", "read", "--bus", b, "--since", "MSG-nope"])
        .status(3)
        .stderr_has("no message `MSG-nope`")
        .run();
}

#[test]
fn follow_prints_messages_as_they_are_posted() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("not-yet/bus.md");
    let b = bus.to_str().unwrap().to_string();
    let mut reader = Command::new(bin())
        .args(["bus", "read", "--follow", "--bus", &b])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    // The follower watches the folder; post until it has seen a message, so
    // that a post made before its watch started cannot be missed.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.by_ref() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    for i in 0..50 {
        post(
            dir.path(),
            &[
                "--bus",
                &b,
                "--project",
                "p",
                "--type",
                "PROGRESS",
                "--body",
                &format!("step {i}"),
            ],
        );
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen.push(line);
            break;
        }
    }
    reader.kill().unwrap();
    reader.wait().unwrap();
    assert!(!seen.is_empty(), "--follow printed nothing");
    assert!(seen[0].contains("(PROGRESS) step"), "{seen:?}");
}

#[test]
fn a_full_disk_during_a_post_is_a_clear_error_and_leaves_no_half_record() {
    // A file-size limit (`prlimit --fsize`, util-linux) stands in for a
    // full disk: the write fails with EFBIG part-way through the record.
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("bus.md");
    let bus_arg = bus.to_str().unwrap();
    post(
        dir.path(),
        &["--bus", bus_arg, "--project", "p", "--body", "first"],
    );
    let before = std::fs::metadata(&bus).unwrap().len();
    let out = Command::new("prlimit")
        .arg(format!("--fsize={}", before + 40))
        .arg(bin())
        .current_dir(dir.path())
        .env_remove("JRUN_MESSAGE_BUS")
        .args(["bus", "post", "--bus", bus_arg, "--project", "p", "--body"])
        .arg("a second record, longer than the forty bytes the limit leaves")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("File too large") && err.contains("ulimit -f"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&bus).unwrap().len(),
        before,
        "no half record"
    );
    // The bus reads, and takes the next post.
    post(
        dir.path(),
        &["--bus", bus_arg, "--project", "p", "--body", "third"],
    );
    let bodies: Vec<String> = read_json(dir.path(), &["--bus", bus_arg])
        .iter()
        .map(|r| r["body"].as_str().unwrap().trim().to_string())
        .collect();
    assert_eq!(bodies, ["first", "third"]);
}

#[test]
fn a_misspelt_project_or_task_is_said_not_read_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    post(dir.path(), &["--project", "demo", "--body", "hello"]);
    let run = |args: &[&str]| {
        conductor()
            .current_dir(dir.path())
            .env_remove("JRUN_MESSAGE_BUS")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["bus", "read", "--project", "dmeo"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("there is no bus at"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("the projects there are: demo"),
        "{}",
        stderr(&out)
    );
    let out = run(&["bus", "read", "--project", "demo", "--task", "summary"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not an instance key"),
        "{}",
        stderr(&out)
    );
    // Posting to a new project is allowed, and said.
    let out = run(&["bus", "post", "--project", "other", "--body", "x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("note: started a new bus at"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("the projects there are: demo"),
        "{}",
        stderr(&out)
    );
    // Nothing on stdin is no body (exit 2); `--body ''` is a body, as any text.
    let out = Command::new(bin())
        .current_dir(dir.path())
        .env_remove("JRUN_MESSAGE_BUS")
        .args(["bus", "post", "--project", "demo"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no body: stdin was empty"),
        "{}",
        stderr(&out)
    );
    assert_eq!(read_json(dir.path(), &["--project", "demo"]).len(), 1);
}

/// A folder mounted through FUSE at another path, unmounted when dropped.
struct Mount(std::path::PathBuf);

impl Mount {
    /// `real` mounted at `at` by bindfs, with `flock` passed on to `real`
    /// (as a shared file system's client passes it to its server).
    fn bindfs(real: &std::path::Path, at: &std::path::Path) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("bindfs")
            .args(["--multithreaded", "--enable-lock-forwarding"])
            .arg(real)
            .arg(at)
            .output()
            .expect("bindfs is installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "bindfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs bindfs and FUSE; .ci/run installs bindfs, checks FUSE, and runs this"]
fn writers_through_two_mounts_of_one_folder_keep_every_record() {
    // Two hosts of a cluster see one shared folder through two clients;
    // here, two FUSE mounts of one folder, each with its own cache of the
    // file's size. Every record of both writers must be there, in order.
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let mounts = [
        Mount::bindfs(&real, &dir.path().join("a")),
        Mount::bindfs(&real, &dir.path().join("b")),
    ];
    let children: Vec<_> = mounts
        .iter()
        .enumerate()
        .map(|(w, m)| {
            Command::new(bin())
                .args(["bus", "post", "--bus"])
                .arg(m.0.join("bus.md"))
                .args(["--project", "shared", "--repeat", "600", "--body"])
                .arg(format!("w{w}"))
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let bus = real.join("bus.md");
    let msgs = read_json(dir.path(), &["--bus", bus.to_str().unwrap()]);
    assert_per_writer_order(&msgs, 2, 600);
}
