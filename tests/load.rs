//! Load: a thousand node instances of four iterations each through the fake
//! agent, and a 1 GiB bus tailed and followed while sixteen writers append.
//! Nothing is lost, and conductor's memory, descriptors and processes are
//! checked from /proc while it works and after it is gone.
//!
//! Alone on two cores the thousand instances take 25-30 s and the 1 GiB bus
//! 6-8 s, most of a plain `cargo test`: both are ignored there, and CI runs
//! them with `cargo test -- --include-ignored`.

#![expect(
    clippy::print_stderr,
    reason = "the load figures are printed beside the verdict, for docs/performance.md"
)]

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use conductor::bus::{BusWriter, Message, NewMessage};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("conductor")
}

/// A child process that is killed (and reaped) however the test ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `KiB` figure from /proc/<pid>/status (`VmRSS`, `VmHWM`); `None` once
/// the process is gone or a zombie (which has no memory left).
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The targets of a process's open descriptors.
fn fds(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.display().to_string())
        .collect()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Bytes a process has read through system calls so far (`rchar`).
fn rchar(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Record openings in a bus file's text: a `---` line followed by a
/// `msg_id:` line, at the start or after a line break. Every one must parse.
fn raw_records(text: &str) -> usize {
    usize::from(text.starts_with("---\nmsg_id: ")) + text.matches("\n---\nmsg_id: ").count()
}

/// Every record of a bus, after checking that each record in it parsed.
fn parsed_bus(path: &Path) -> Vec<Message> {
    let text = std::fs::read_to_string(path).unwrap();
    let (messages, consumed) = conductor::bus::read_from(path, 0).unwrap();
    assert_eq!(
        messages.len(),
        raw_records(&text),
        "a record of {} does not parse",
        path.display()
    );
    assert_eq!(consumed, text.len() as u64, "{} ends torn", path.display());
    messages
}

const INSTANCES: usize = 1000;
const ITERATIONS: usize = 4;
/// Enough agents at once to keep two cores busy: a run is mostly process
/// start-up, and 16, 32 and 64 took the same time on 2 cores (43-52 s).
const MAX_PARALLEL: usize = 32;

/// One sample of conductor from /proc while it runs.
struct Sample {
    at: Duration,
    fds: usize,
    /// Anonymous resident memory (the heap): what a leak grows. The rest of
    /// `VmRSS` is the binary's own pages.
    anon_kib: u64,
    hwm_kib: u64,
}

/// One instance of the load workflow: done after four iterations, with four
/// completed runs on disk and a task bus of their starts and stops.
fn check_instance(inst: &serde_json::Value) {
    let key = inst["key"].as_str().unwrap();
    assert_eq!(
        (&inst["status"], &inst["stop_reason"], &inst["iterations"]),
        (
            &serde_json::json!("done"),
            &serde_json::json!("done_file"),
            &serde_json::json!(ITERATIONS)
        ),
        "{key}"
    );
    let task_dir = PathBuf::from(inst["task_dir"].as_str().unwrap());
    assert!(task_dir.join("DONE").is_file(), "{key}: no DONE");
    let mut runs: Vec<PathBuf> = std::fs::read_dir(task_dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), ITERATIONS, "{key}: {runs:?}");
    let records = parsed_bus(&task_dir.join("TASK-MESSAGE-BUS.md"));
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["RUN_START", "RUN_STOP"].repeat(ITERATIONS), "{key}");
    for (i, run) in runs.iter().enumerate() {
        let info = conductor::store::RunInfo::read(&run.join("run-info.yaml")).unwrap();
        assert_eq!(
            (info.status.as_str(), info.exit_code, info.iteration),
            ("completed", 0, Some(u32::try_from(i + 1).unwrap())),
            "{}",
            run.display()
        );
        assert_eq!(
            std::fs::read_to_string(run.join("output.md")).unwrap(),
            format!("fake agent answered call {}\n", i + 1),
            "{}",
            run.display()
        );
        let run_id = run.file_name().unwrap().to_str().unwrap();
        for r in &records[2 * i..2 * i + 2] {
            assert_eq!(r.run_id, run_id, "{key}: {r:?}");
        }
    }
}

#[test]
#[ignore = "slow: .ci/run runs it with --include-ignored"]
fn a_thousand_instances_of_four_iterations_each_all_complete_and_leak_nothing() {
    // The run store (35,000 files) goes on a RAM file system when there is
    // one: on a disk mounted with `discard` (this machine's is), deleting
    // it alone takes over a minute, and its fsyncs wait on other jobs' I/O.
    let dir = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let root = dir.path().join("runs");
    let items: Vec<String> = (0..INSTANCES).map(|i| format!("\"i{i}\"")).collect();
    let workflow = format!(
        r#"version = 1
name = "load"

[agents.fake]
kind = "command"
command = ["conductor", "__fake-agent", "--done-after", "{ITERATIONS}"]

[nodes.n]
agent = "fake"
for_each = [{}]
prompt = "work on {{{{ item }}}}"
stop = {{ done_file = true, max_iterations = {} }}
"#,
        items.join(", "),
        ITERATIONS + 1
    );
    std::fs::write(dir.path().join("flow.toml"), workflow).unwrap();
    // Conductor, its keeper and its agents inherit this variable: it is
    // how the processes of this apply, and only these, are found in /proc.
    let mark = format!("CONDUCTOR_LOAD_TEST={}", dir.path().display());
    let summary_path = dir.path().join("summary.json");
    let stderr_path = dir.path().join("apply-stderr.txt");
    let started = Instant::now();
    let mut apply = KillOnDrop(
        Command::new(bin())
            .current_dir(dir.path())
            .args(["apply", "flow.toml", "--json", "--grace", "300ms"])
            .args(["--max-parallel", &MAX_PARALLEL.to_string(), "--root"])
            .arg(&root)
            .env("NO_COLOR", "1")
            .env("CONDUCTOR_LOAD_TEST", dir.path())
            .env_remove("RUST_LOG")
            // Files, not pipes: the summary of a thousand instances is larger
            // than a pipe holds, and the progress lines never stop.
            .stdout(File::create(&summary_path).unwrap())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = apply.0.id();
    let mut samples: Vec<Sample> = Vec::new();
    let mut keeper_seen = false;
    let mut last_scan = Vec::new();
    let status = loop {
        if let Some(status) = apply.0.try_wait().unwrap() {
            break status;
        }
        // Descriptors first: a process that still has its memory when
        // `status` is read had not begun closing them.
        let fds = fd_count(pid);
        if let (Some(anon_kib), Some(hwm_kib)) =
            (status_kib(pid, "RssAnon"), status_kib(pid, "VmHWM"))
        {
            samples.push(Sample {
                at: started.elapsed(),
                fds,
                anon_kib,
                hwm_kib,
            });
        }
        // While agents run, the scan that must come back empty at the end
        // does find this apply's processes. Every 50th sample until it
        // does: on a loaded machine the keeper may start late.
        if !keeper_seen && !samples.is_empty() && samples.len().is_multiple_of(50) {
            last_scan = crate::apply_support::processes_with_env(&mark);
            keeper_seen = last_scan.iter().any(|(_, cmd)| cmd.contains("__keeper"));
        }
        assert!(
            started.elapsed() < Duration::from_mins(10),
            "the apply did not finish in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    assert_eq!(
        status.code(),
        Some(0),
        "apply failed; its stderr ends:\n{tail}"
    );
    assert!(samples.len() > 50, "too few samples");
    assert!(
        keeper_seen,
        "no keeper among this apply's processes while it ran; the last scan found {last_scan:?}"
    );

    // What the user is told.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["status"], "done");
    assert_eq!(summary["counts"]["done"], INSTANCES);
    assert_eq!(summary["counts"]["failed"], 0);
    let instances = summary["instances"].as_array().unwrap();
    assert_eq!(instances.len(), INSTANCES);

    let keys: HashSet<&str> = instances
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), INSTANCES, "an instance is twice in the summary");

    // What the run store holds: one task per instance, four completed runs
    // in each, each with its answer, and their records on the task bus
    // (checked on every core: 4,000 run-info files to parse).
    let tasks = std::fs::read_dir(root.join("load"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("task-"))
        .count();
    assert_eq!(tasks, INSTANCES);
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|s| {
        for chunk in instances.chunks(INSTANCES.div_ceil(cores)) {
            s.spawn(move || chunk.iter().for_each(check_instance));
        }
    });

    // The project bus: one start and one done per instance, framed by the
    // workflow's start and stop.
    let project = parsed_bus(&root.join("load/PROJECT-MESSAGE-BUS.md"));
    let mut kinds = BTreeMap::new();
    for r in &project {
        *kinds.entry(r.kind.as_str()).or_insert(0) += 1;
    }
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("NODE_DONE", INSTANCES),
            ("NODE_START", INSTANCES),
            ("WORKFLOW_START", 1),
            ("WORKFLOW_STOP", 1)
        ])
    );
    let done: HashSet<&str> = project
        .iter()
        .filter(|r| r.kind == "NODE_DONE")
        .inspect(|r| assert_eq!(r.meta["iterations"], ITERATIONS.to_string(), "{r:?}"))
        .map(|r| r.meta["instance"].as_str())
        .collect();
    assert_eq!(done, keys, "one NODE_DONE per instance");
    assert_eq!(project.last().unwrap().kind, "WORKFLOW_STOP");
    assert_eq!(project.last().unwrap().meta["status"], "done");

    // What conductor held while it ran, sampled every 10 ms.
    let (first, last) = (&samples[0], samples.last().unwrap());
    let peak_fds = samples.iter().map(|s| s.fds).max().unwrap();
    let peak_kib = samples.iter().map(|s| s.hwm_kib).max().unwrap();
    let quarter = wall / 4;
    let anon = |keep: &dyn Fn(Duration) -> bool| {
        samples
            .iter()
            .filter(|s| keep(s.at))
            .map(|s| s.anon_kib)
            .max()
            .unwrap()
    };
    let (early, late) = (anon(&|at| at <= quarter), anon(&|at| at >= 3 * quarter));
    eprintln!(
        "load: {INSTANCES} instances x {ITERATIONS} iterations, --max-parallel {MAX_PARALLEL}: \
         apply {wall:.1?}, {} samples; fds first {} last {} peak {peak_fds}; \
         VmHWM {peak_kib} KiB; RssAnon first quarter {early} KiB, last quarter {late} KiB",
        samples.len(),
        first.fds,
        last.fds
    );
    // Descriptors: back near where they started (the runtime, the
    // keeper's socket, the locks and the project bus are opened after the
    // first sample); a leak per run or per instance would be thousands.
    assert!(
        last.fds <= first.fds + 16,
        "conductor ended with {} descriptors, started with {}",
        last.fds,
        first.fds
    );
    // While it ran, bounded by the agents running at once, not by the runs
    // done: while an agent starts, conductor holds the three files it gets
    // as stdin, stdout and stderr until the keeper has them.
    let bound = first.fds + 3 * MAX_PARALLEL + 16;
    assert!(
        peak_fds <= bound,
        "conductor held {peak_fds} descriptors with at most {MAX_PARALLEL} agents (bound {bound})"
    );
    // Memory: a debug conductor peaks at 38-39 MiB here, 28 MiB of it the
    // pages of its own 270 MB binary and about 8 MiB heap, whatever
    // --max-parallel is (16 to 64 measured). 64 MiB leaves room for another
    // machine's binary and allocator, and 4,000 runs leaking even 7 KiB each
    // would exceed it.
    assert!(
        peak_kib < 64 * 1024,
        "conductor peaked at {peak_kib} KiB for {INSTANCES} instances"
    );
    // Flat: the heap in the last quarter of the apply is no larger than in
    // the first quarter (by then 32 agents run and the plan is built) plus
    // 4 MiB; a heap that grew with the runs done (3,000 between the two)
    // would show here.
    assert!(
        late <= early + 4 * 1024,
        "conductor's heap grew as it ran: {early} KiB in the first quarter, {late} KiB in the last"
    );

    // Nothing of this apply is left running: no agent, no keeper (which
    // exits by itself once conductor's end of its socket closes).
    let mut left = Vec::new();
    let gone = Instant::now();
    while gone.elapsed() < Duration::from_secs(10) {
        left = crate::apply_support::processes_with_env(&mark);
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(left.is_empty(), "left running after the apply: {left:?}");
}

/// The follower's output lines, as a thread reads them.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next `n` records the follower prints, waiting at most `limit` in all.
fn next_records(rx: &Receiver<String>, n: usize, limit: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => out.push(serde_json::from_str(&line).unwrap()),
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "the follower printed {} of {n} records in {limit:?}",
                    out.len()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("the follower exited after {} of {n} records", out.len())
            }
        }
    }
    out
}

fn body(r: &serde_json::Value) -> &str {
    r["body"].as_str().unwrap()
}

const BEFORE: usize = 200;
const TAIL: usize = 100;
const WRITERS: usize = 16;
/// Posts per writer, each a `conductor bus post` process.
const EACH: usize = 100;

#[test]
#[ignore = "slow: .ci/run runs it with --include-ignored"]
fn a_one_gib_bus_is_tailed_cheaply_and_followed_while_sixteen_writers_append() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("PROJECT-MESSAGE-BUS.md");
    // 1 GiB less 1 MiB of holes (NUL bytes that take no disk), then real
    // records at the end: the tail's window starts among the NULs.
    let sparse: u64 = (1 << 30) - (1 << 20);
    File::create(&bus).unwrap().set_len(sparse).unwrap();
    let post = |body: String| {
        let mut writer = BusWriter::open(&bus).unwrap();
        writer
            .append(&NewMessage {
                kind: "FACT".into(),
                project_id: "load".into(),
                body,
                ..NewMessage::default()
            })
            .unwrap();
    };
    for i in 0..BEFORE {
        post(format!("before #{i}"));
    }
    assert!(std::fs::metadata(&bus).unwrap().len() > sparse);

    let mut follower = KillOnDrop(
        Command::new(bin())
            .args([
                "bus",
                "read",
                "--tail",
                &TAIL.to_string(),
                "--follow",
                "--json",
                "--bus",
            ])
            .arg(&bus)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = follower.0.id();
    let rx = lines_of(&mut follower.0);
    let tail = next_records(&rx, TAIL, Duration::from_secs(30));
    let bodies: Vec<&str> = tail.iter().map(body).collect();
    let expected: Vec<String> = (BEFORE - TAIL..BEFORE)
        .map(|i| format!("before #{i}"))
        .collect();
    assert_eq!(bodies, expected, "the tail is the last {TAIL} records");
    // The tail read a window from the end, not the gigabyte before it.
    let tail_rchar = rchar(pid);
    assert!(
        tail_rchar < 1 << 20,
        "`bus read --tail {TAIL}` read {tail_rchar} bytes of a 1 GiB bus"
    );

    // Once it prints a record posted now, it is following: its watch is set.
    post("probe".to_string());
    let probe = next_records(&rx, 1, Duration::from_secs(30));
    assert_eq!(body(&probe[0]), "probe");
    let (fds_before, rss_before) = (fds(pid), status_kib(pid, "VmRSS").unwrap());
    let (rchar_before, len_before) = (rchar(pid), std::fs::metadata(&bus).unwrap().len());

    // Sixteen shell loops of `conductor bus post`, all at once.
    let script = format!(
        "for i in $(seq 0 {}); do {} bus post --bus {} --project load --body \"w$1 #$i\" >/dev/null || exit 1; done",
        EACH - 1,
        bin().display(),
        bus.display()
    );
    let started = Instant::now();
    let writers: Vec<KillOnDrop> = (0..WRITERS)
        .map(|w| {
            KillOnDrop(
                Command::new("sh")
                    .args(["-c", &script, "sh", &w.to_string()])
                    .env_remove("JRUN_MESSAGE_BUS")
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let appended_records = next_records(&rx, WRITERS * EACH, Duration::from_mins(5));
    for mut w in writers {
        assert!(w.0.wait().unwrap().success(), "a writer failed");
    }
    let writing = started.elapsed();
    // A last record: everything printed before it is all it will print
    // for the writers' records, so a duplicate would show up before it.
    post("sentinel".to_string());
    let sentinel = next_records(&rx, 1, Duration::from_secs(30));
    assert_eq!(
        body(&sentinel[0]),
        "sentinel",
        "an extra record was printed"
    );

    // Every writer's records, once each, in the order it wrote them.
    let mut next = [0usize; WRITERS];
    for r in &appended_records {
        let (w, i) = body(r)
            .strip_prefix('w')
            .and_then(|b| b.split_once(" #"))
            .unwrap_or_else(|| panic!("not a writer's record: {r}"));
        let (w, i): (usize, usize) = (w.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[w], "writer {w}'s records out of order or repeated");
        next[w] += 1;
    }
    assert_eq!(next, [EACH; WRITERS]);

    // The file: every record complete and parseable after the holes, ids
    // unique, and the follower printed them all in file order.
    let len_after = std::fs::metadata(&bus).unwrap().len();
    let (all, end) = conductor::bus::read_from(&bus, sparse).unwrap();
    assert_eq!(end, len_after, "the bus ends with a torn record");
    let region = {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = File::open(&bus).unwrap();
        f.seek(SeekFrom::Start(sparse)).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    };
    assert_eq!(all.len(), raw_records(&region), "a record does not parse");
    assert_eq!(all.len(), BEFORE + 1 + WRITERS * EACH + 1);
    let ids: HashSet<&str> = all.iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "duplicate msg_id");
    let printed: Vec<&str> = probe
        .iter()
        .chain(&appended_records)
        .chain(&sentinel)
        .map(|r| r["msg_id"].as_str().unwrap())
        .collect();
    let written: Vec<&str> = all[BEFORE..].iter().map(|m| m.msg_id.as_str()).collect();
    assert_eq!(printed, written, "the follower's order is not the file's");

    // It read what was appended, never the gigabyte: its reads also count
    // the inotify events it is woken by (an open, a modify and a close per
    // post, 48 bytes each, about a record's size), so measured 2.0x.
    let appended = len_after - len_before;
    let read = rchar(pid) - rchar_before;
    let (fds_after, rss_after) = (fds(pid), status_kib(pid, "VmRSS").unwrap());
    eprintln!(
        "load: {} posts by {WRITERS} writers in {writing:.1?}; follower read {read} bytes for {appended} appended; \
         fds {} -> {}; VmRSS {rss_before} -> {rss_after} KiB; tail read {tail_rchar} bytes",
        WRITERS * EACH,
        fds_before.len(),
        fds_after.len()
    );
    assert!(
        read <= 4 * appended + (64 << 10),
        "the follower read {read} bytes for {appended} appended"
    );
    // Flat: no descriptor more (one may be a read in progress), and at
    // most 2 MiB more memory for 1,600 records.
    assert!(
        fds_after.len() <= fds_before.len() + 1,
        "the follower's descriptors grew: {fds_before:?} -> {fds_after:?}"
    );
    assert!(
        rss_after <= rss_before + 2 * 1024,
        "the follower's memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}
