//! `conductor apply` as a whole process against its bars (docs/performance.md): one node whose
//! agent is done on its first iteration (<= 8 ms), the engine's own time per
//! Ralph iteration beyond the agent's (<= 0.3 ms), the engine's peak RSS for 1
//! and 20 iterations (<= 10 MiB, flat), and 100 and 1,000 concurrent fake
//! agents sleeping 1 s (<= 3 s, <= 64 MiB, no file-descriptor leak).
//!
//! Everything runs the release binary that `cargo bench` builds beside this
//! bench (`CARGO_BIN_EXE_conductor`, under the target dir's `release`), so no
//! separate `cargo build --release` is needed. Each apply gets a fresh runs
//! root under `TMPDIR`: run it again with `TMPDIR=/dev/shm` to take the disk
//! (and its fsyncs) out of the figures. The derived figures (per-iteration
//! engine time, RSS, fan-out) are medians printed after criterion's; a filter
//! argument (`cargo bench --bench apply -- fan_out`) selects sections by name.

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set itself up has nothing to measure"
)]
#![expect(
    clippy::print_stdout,
    reason = "the figures criterion does not take are printed for docs/performance.md"
)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;

#[path = "support/gnu_time.rs"]
mod gnu_time;

const CONDUCTOR: &str = env!("CARGO_BIN_EXE_conductor");

/// The folder every workflow and runs root of this bench lives in, deleted
/// only when the bench ends: on ext4 a file created within seconds of many
/// deletions costs a scan of the recently freed inodes, which would charge
/// one apply's clean-up to the next one.
static BASE: OnceLock<PathBuf> = OnceLock::new();

/// A workflow file in its own folder; every apply of it gets a fresh runs
/// root, so no apply reads what an earlier one left.
struct Flow {
    dir: PathBuf,
    applies: AtomicU32,
}

impl Flow {
    fn new(toml: &str) -> Self {
        static FLOWS: AtomicU32 = AtomicU32::new(0);
        let n = FLOWS.fetch_add(1, Ordering::Relaxed);
        let dir = BASE
            .get()
            .expect("main sets BASE")
            .join(format!("flow-{n}"));
        std::fs::create_dir(&dir).expect("a folder for the workflow");
        std::fs::write(dir.join("flow.toml"), toml).expect("write the workflow");
        Self {
            dir,
            applies: AtomicU32::new(0),
        }
    }

    fn fresh_root(&self) -> PathBuf {
        let n = self.applies.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("runs-{n}"))
    }

    /// `conductor apply flow.toml --root ROOT ...`, output discarded.
    fn command(&self, program: &str, pre: &[&str], root: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir)
            .args(pre)
            .args(["apply", "flow.toml", "--grace", "300ms", "--root"])
            .arg(root)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn apply(&self, extra: &[&str]) -> ExitStatus {
        self.command(CONDUCTOR, &[], &self.fresh_root(), extra)
            .status()
            .expect("conductor runs")
    }

    /// The `--json` summary of one apply, to check a workflow does what its
    /// bench claims before it is timed.
    fn summary(&self, extra: &[&str]) -> serde_json::Value {
        let out = self
            .command(CONDUCTOR, &[], &self.fresh_root(), extra)
            .arg("--json")
            .stdout(Stdio::piped())
            .output()
            .expect("conductor runs");
        serde_json::from_slice(&out.stdout).expect("a JSON summary")
    }
}

fn one_node(command: &str, stop: &str) -> String {
    format!(
        "version = 1\nname = \"bench\"\n[agents.a]\nkind = \"command\"\ncommand = [{command}]\n\
         [nodes.n]\nagent = \"a\"\nprompt = \"work\"\nstop = {stop}\n"
    )
}

const TRUE: &str = r#""true""#;

fn fake(args: &str) -> String {
    format!(r#""conductor", "__fake-agent"{args}"#)
}

fn fan_out(instances: usize, command: &str) -> String {
    let mut items = String::new();
    for i in 0..instances {
        let _ = write!(items, "{}\"i{i}\"", if i == 0 { "" } else { ", " });
    }
    format!(
        "version = 1\nname = \"bench\"\n[agents.a]\nkind = \"command\"\ncommand = [{command}]\n\
         [nodes.n]\nagent = \"a\"\nprompt = \"work on {{{{ item }}}}\"\nfor_each = [{items}]\n\
         stop = {{ exit_zero = true }}\n"
    )
}

/// Checks the instance's stop reason and iteration count.
fn expect_outcome(flow: &Flow, reason: &str, iterations: u64) {
    let s = flow.summary(&[]);
    let n = &s["instances"][0];
    assert_eq!(n["stop_reason"], reason, "{s}");
    assert_eq!(n["iterations"], iterations, "{s}");
}

fn one_node_done(c: &mut Criterion) {
    let trivial = Flow::new(&one_node(TRUE, "{ exit_zero = true }"));
    expect_outcome(&trivial, "exit_zero", 1);
    let done_file = Flow::new(&one_node(
        &fake(r#", "--done-after", "1""#),
        "{ max_iterations = 30 }",
    ));
    expect_outcome(&done_file, "done_file", 1);
    let mut group = c.benchmark_group("apply_one_node_done_first_iteration");
    group.sample_size(30);
    for (name, flow) in [("true_exit_zero", &trivial), ("fake_done_file", &done_file)] {
        group.bench_function(name, |b| {
            b.iter(|| assert!(flow.apply(&[]).success()));
        });
    }
    group.finish();
}

fn spawn_n(program: &str, args: &[&str], task_folder: &Path, n: usize) {
    for _ in 0..n {
        let status = Command::new(program)
            .args(args)
            .env("JRUN_TASK_FOLDER", task_folder)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the agent runs");
        assert!(status.success());
    }
}

fn twenty_iterations(c: &mut Criterion) {
    // Without exit_zero `true` never stops on its own: the loop runs to its cap.
    let flow = Flow::new(&one_node(TRUE, "{ max_iterations = 20 }"));
    expect_outcome(&flow, "max_iterations", 20);
    let task = tempfile::tempdir().expect("a temp dir");
    let mut group = c.benchmark_group("apply_iterations");
    group.sample_size(10);
    group.bench_function("true_x20", |b| {
        b.iter(|| flow.apply(&[]));
    });
    group.bench_function("spawn_true_x19_directly", |b| {
        b.iter(|| spawn_n("true", &[], task.path(), 19));
    });
    group.finish();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let start = Instant::now();
    let _ = f();
    start.elapsed()
}

/// (20 iterations - 1 iteration - 19 direct spawns of the agent) / 19, the
/// three measured back to back in each round so that they share the noise of
/// the moment; the median over the rounds.
fn per_iteration(label: &str, x1: &Flow, x20: &Flow, agent: (&str, &[&str])) {
    const ROUNDS: usize = 15;
    let task = tempfile::tempdir().expect("a temp dir");
    let (mut a, mut b, mut s, mut engine) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        let one = time(|| x1.apply(&[]));
        let twenty = time(|| x20.apply(&[]));
        let spawns = time(|| spawn_n(agent.0, agent.1, task.path(), 19));
        a.push(one);
        b.push(twenty);
        s.push(spawns);
        engine.push(twenty.saturating_sub(one).saturating_sub(spawns) / 19);
    }
    println!(
        "apply_engine_per_iteration/{label}: x1 {:.2} ms, x20 {:.2} ms, 19 direct spawns {:.2} ms \
         -> engine {:.3} ms per iteration (median of {ROUNDS} rounds; (x20 - x1) / 19 {:.3} ms)",
        ms(median(a.clone())),
        ms(median(b.clone())),
        ms(median(s)),
        ms(median(engine)),
        ms(median(b).saturating_sub(median(a)) / 19),
    );
}

fn engine_per_iteration() {
    let true_x1 = Flow::new(&one_node(TRUE, "{ exit_zero = true }"));
    let true_x20 = Flow::new(&one_node(TRUE, "{ max_iterations = 20 }"));
    per_iteration("true", &true_x1, &true_x20, ("true", &[]));
    let stop = "{ max_iterations = 30 }";
    let fake_x1 = Flow::new(&one_node(&fake(r#", "--done-after", "1""#), stop));
    let fake_x20 = Flow::new(&one_node(&fake(r#", "--done-after", "20""#), stop));
    expect_outcome(&fake_x20, "done_file", 20);
    per_iteration(
        "fake_done_file",
        &fake_x1,
        &fake_x20,
        (CONDUCTOR, &["__fake-agent"]),
    );
}

/// What was seen of a running conductor by polling /proc: its own peak RSS
/// (`VmHWM`, which excludes its children) and its open descriptors.
#[derive(Debug, Default)]
struct Watched {
    wall: Duration,
    status: Option<ExitStatus>,
    hwm_kib: u64,
    fds_first: usize,
    fds_peak: usize,
    fds_last: usize,
}

fn proc_sample(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((hwm, fds))
}

fn watch(mut cmd: Command, every: Duration) -> Watched {
    let start = Instant::now();
    let mut child = cmd.spawn().expect("conductor runs");
    let mut w = Watched::default();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            w.status = Some(status);
            break;
        }
        // A zombie has no VmHWM line and no fd folder: the last sample taken
        // is the last one of the living process.
        if let Some((hwm, fds)) = proc_sample(child.id()) {
            w.hwm_kib = w.hwm_kib.max(hwm);
            if w.fds_first == 0 {
                w.fds_first = fds;
            }
            w.fds_peak = w.fds_peak.max(fds);
            w.fds_last = fds;
        }
        std::thread::sleep(every);
    }
    w.wall = start.elapsed();
    w
}

/// Peak RSS of one apply of `flow` (see `support/gnu_time.rs`).
fn time_max_rss_kib(flow: &Flow, extra: &[&str]) -> Option<u64> {
    let cmd = flow.command(CONDUCTOR, &[], &flow.fresh_root(), extra);
    let (status, kib) = gnu_time::peak_rss_kib(&cmd, &flow.dir.join("time-report"))?;
    assert!(status.code().is_some());
    kib
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn mib(kib: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "sizes in MiB need no precision")]
    let m = kib as f64 / 1024.0;
    format!("{m:.1} MiB")
}

fn rss() {
    const RUNS: usize = 9;
    for (label, flow) in [
        ("x1", Flow::new(&one_node(TRUE, "{ exit_zero = true }"))),
        ("x20", Flow::new(&one_node(TRUE, "{ max_iterations = 20 }"))),
    ] {
        let (mut hwm, mut fds_last, mut timed) = (vec![], vec![], vec![]);
        for _ in 0..RUNS {
            let root = flow.fresh_root();
            let w = watch(
                flow.command(CONDUCTOR, &[], &root, &[]),
                Duration::from_micros(500),
            );
            hwm.push(w.hwm_kib);
            fds_last.push(w.fds_last as u64);
            if let Some(kib) = time_max_rss_kib(&flow, &[]) {
                timed.push(kib);
            }
        }
        let timed = if timed.is_empty() {
            "no /usr/bin/time here".to_owned()
        } else {
            mib(median_u64(timed))
        };
        println!(
            "apply_rss/true_{label}: /usr/bin/time %M {timed}; polled VmHWM of conductor alone {} \
             (a poll may miss the last moments); fds at the last poll {} (medians of {RUNS})",
            mib(median_u64(hwm)),
            median_u64(fds_last),
        );
    }
}

/// The agents' own cost on this machine: `n` of them started at once by
/// the bench itself, no conductor involved.
fn direct_floor(n: usize, program: &str, args: &[&str]) -> Duration {
    let task = tempfile::tempdir().expect("a temp dir");
    let start = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|_| {
            Command::new(program)
                .args(args)
                .env("JRUN_TASK_FOLDER", task.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the agent starts")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    start.elapsed()
}

fn fan_out_bench() {
    const RUNS: usize = 3;
    let fake_sleep = fake(r#", "--sleep", "1s""#);
    let cases: [(usize, &str, &str, &[&str]); 4] = [
        (1, "fake", &fake_sleep, &["__fake-agent", "--sleep", "1s"]),
        (100, "fake", &fake_sleep, &["__fake-agent", "--sleep", "1s"]),
        (
            1000,
            "fake",
            &fake_sleep,
            &["__fake-agent", "--sleep", "1s"],
        ),
        // `sleep` is a small static-ish binary: what is left is the engine's.
        (1000, "coreutils_sleep", r#""sleep", "1""#, &["1"]),
    ];
    for (n, label, command, direct_args) in cases {
        let flow = Flow::new(&fan_out(n, command));
        let limit = n.to_string();
        let extra = ["--max-parallel", limit.as_str()];
        let direct_program = if label == "fake" { CONDUCTOR } else { "sleep" };
        let (mut runs, mut timed, mut floor) = (vec![], vec![], vec![]);
        for _ in 0..RUNS {
            let root = flow.fresh_root();
            let summary = flow.dir.join("summary.json");
            let mut cmd = flow.command(CONDUCTOR, &[], &root, &extra);
            // A file, not a pipe: nobody reads while polling, and 1,000
            // instances' summary would fill a pipe and block conductor.
            cmd.arg("--json")
                .stdout(std::fs::File::create(&summary).expect("summary file"));
            let w = watch(cmd, Duration::from_millis(20));
            let s: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&summary).expect("summary"))
                    .expect("a JSON summary");
            assert_eq!(s["counts"]["done"], n, "{s}");
            assert!(w.status.is_some_and(|s| s.success()));
            runs.push(w);
            if let Some(kib) = time_max_rss_kib(&flow, &extra) {
                timed.push(kib);
            }
            floor.push(direct_floor(n, direct_program, direct_args));
        }
        runs.sort_by_key(|w| w.wall);
        let mid = &runs[RUNS / 2];
        let timed = if timed.is_empty() {
            "no /usr/bin/time here".to_owned()
        } else {
            mib(median_u64(timed))
        };
        println!(
            "apply_fan_out/{n}_{label}_agents_sleeping_1s: wall {:.2} s (runs: {}); the same agents \
             started directly {:.2} s; VmHWM of conductor {}; /usr/bin/time %M {timed}; \
             conductor's fds first/peak/last {}/{}/{} (median run of {RUNS})",
            mid.wall.as_secs_f64(),
            runs.iter()
                .map(|w| format!("{:.2} s", w.wall.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(", "),
            median(floor).as_secs_f64(),
            mib(mid.hwm_kib),
            mid.fds_first,
            mid.fds_peak,
            mid.fds_last,
        );
    }
}

/// How an apply grows from 1,000 to 100,000 node instances (agent `true`,
/// 64 at a time), and with 10,000 agents running at once (`sleep 1`, all at
/// once): wall time, time per instance, conductor's peak RSS and
/// descriptors. One apply per size: the largest take minutes. 100,000
/// instances run only when named (`-- apply_scale_instances/100000`); they
/// leave about a million files in the runs root while the bench runs.
fn scale_bench() {
    let named_100k = filters().iter().any(|f| f.ends_with("100000"));
    let mut cases: Vec<(String, usize, &str, usize)> = [1_000, 10_000]
        .into_iter()
        .chain(named_100k.then_some(100_000))
        .map(|n| (format!("apply_scale_instances/{n}"), n, TRUE, 64))
        .collect();
    cases.push((
        "apply_scale_agents/10000_coreutils_sleep_1s".to_owned(),
        10_000,
        r#""sleep", "1""#,
        10_000,
    ));
    for (name, n, command, parallel) in cases {
        if !wanted(&name) {
            continue;
        }
        let flow = Flow::new(&fan_out(n, command));
        let root = flow.fresh_root();
        let summary = flow.dir.join("summary.json");
        let limit = parallel.to_string();
        let mut cmd = flow.command(CONDUCTOR, &[], &root, &["--max-parallel", &limit]);
        cmd.arg("--json")
            .stdout(std::fs::File::create(&summary).expect("summary file"));
        let w = watch(cmd, Duration::from_millis(50));
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary).expect("summary"))
                .expect("a JSON summary");
        assert_eq!(s["counts"]["done"], n, "{s}");
        assert!(w.status.is_some_and(|s| s.success()));
        println!(
            "{name}: wall {:.2} s, {:.0} µs per instance; VmHWM of conductor {}; \
             conductor's fds first/peak/last {}/{}/{}",
            w.wall.as_secs_f64(),
            (w.wall / u32::try_from(n).expect("a size that fits")).as_secs_f64() * 1e6,
            mib(w.hwm_kib),
            w.fds_first,
            w.fds_peak,
            w.fds_last,
        );
        // A million files would slow every later bench on the disk.
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// An agent printing 1 GiB (`head -c 1073741824 /dev/zero`) beside one
/// printing 10 bytes: conductor's own peak RSS should not move, since agents'
/// output goes to files, never through its memory. The test suite does the
/// same with 256 MiB.
fn flood_bench() {
    for (label, bytes) in [("10B", 10u64), ("1GiB", 1 << 30)] {
        let flow = Flow::new(&one_node(
            &format!(r#""head", "-c", "{bytes}", "/dev/zero""#),
            "{ exit_zero = true, max_iterations = 1 }",
        ));
        let root = flow.fresh_root();
        let w = watch(
            flow.command(CONDUCTOR, &[], &root, &[]),
            Duration::from_millis(5),
        );
        assert!(w.status.is_some_and(|s| s.success()));
        println!(
            "apply_flood/{label}: wall {:.2} s; VmHWM of conductor {}",
            w.wall.as_secs_f64(),
            mib(w.hwm_kib)
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// The positional arguments cargo passes on (`cargo bench --bench apply -- NAME`).
fn filters() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

fn wanted(name: &str) -> bool {
    // `cargo test --benches` runs each criterion bench once; the derived
    // sections take a minute, so they are left to `cargo bench`.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return false;
    }
    let f = filters();
    f.is_empty() || f.iter().any(|f| name.contains(f.as_str()))
}

fn main() {
    let base = tempfile::tempdir().expect("a temp dir");
    BASE.set(base.path().to_owned()).expect("set once");
    let mut c = Criterion::default().configure_from_args();
    one_node_done(&mut c);
    twenty_iterations(&mut c);
    c.final_summary();
    if wanted("apply_engine_per_iteration") {
        engine_per_iteration();
    }
    if wanted("apply_rss") {
        rss();
    }
    if wanted("apply_fan_out") {
        fan_out_bench();
    }
    if wanted("apply_flood") {
        flood_bench();
    }
    scale_bench();
}
