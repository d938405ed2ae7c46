//! Incremental apply and `conductor watch` (issue 4; docs/performance.md):
//!
//! - `plan_fingerprints/{new,up_to_date}/N`: `conductor plan` of a static
//!   `for_each = { glob = "inputs/*.txt" }` over N input files, each
//!   instance's `inputs` being its own file, so that every fingerprint is
//!   computed (N files read and hashed) and the apply index read; once with
//!   no earlier apply, once after an apply (all N up to date).
//! - `apply_up_to_date/N`: `conductor apply` of the same workflow again, all
//!   N instances up to date, so no agent runs: the whole cost of applying a
//!   workflow that has nothing to do, for N from 1,000 to 10,000.
//! - `watch_save_to_agent_start`: a file saved while `conductor watch` is
//!   idle, to the affected node's agent starting. Bar: 150 ms or less, the
//!   watch's debounce included (a burst ends after 30 ms of quiet, at most
//!   50 ms after its first event). Saved: a node's input file, and the
//!   workflow file itself (a new prompt); then one input of the
//!   10,000-instance workflow above, which the watch re-plans whole.
//!
//! The agent that marks its start is `sh -c 'date +%s%N > started'`; the
//! bench reads the wall clock just before it writes the file, and the
//! difference is the figure. It includes `sh` and `date` starting, which
//! the bench measures alone as the floor (the same command spawned
//! directly) and prints beside it.
//!
//! Everything runs the release binary that `cargo bench` builds beside this
//! bench (`CARGO_BIN_EXE_conductor`). The files live under `TMPDIR`: run
//! it with `TMPDIR=/dev/shm` to take the disk out. The runs roots sit beside
//! the workflow's folder, not in it, as the default `.conductor/runs` is
//! never walked: a `for_each` glob walks the whole folder it is relative
//! to, a runs root in it included. A filter argument selects sections by
//! name (`cargo bench --bench incremental -- watch`).

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
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, SamplingMode};

const CONDUCTOR: &str = env!("CARGO_BIN_EXE_conductor");

/// The agent that marks when it started: nanoseconds since the epoch.
const STAMP: &str = r#""sh", "-c", "date +%s%N > started""#;

/// What `conductor watch` prints each time it goes idle.
const IDLE: &str = "watching for changes";

/// `conductor ARGS` in `dir`, output discarded.
fn conductor(dir: &Path, args: &[&str], root: &Path) -> Command {
    let mut cmd = Command::new(CONDUCTOR);
    cmd.current_dir(dir)
        .args(args)
        .arg("--root")
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Runs it; it must succeed.
fn run(mut cmd: Command) {
    assert!(
        cmd.status().expect("conductor runs").success(),
        "{cmd:?} failed"
    );
}

fn stdout_of(mut cmd: Command) -> String {
    let out = cmd.stdout(Stdio::piped()).output().expect("conductor runs");
    assert!(out.status.success(), "{cmd:?} failed");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A workflow of `n` instances, one per input file, each instance's
/// `inputs` its own file.
struct FanOut {
    n: usize,
    dir: PathBuf,
    /// Never applied to.
    empty_root: PathBuf,
    /// Applied to once before the up-to-date figures.
    root: PathBuf,
}

impl FanOut {
    fn new(base: &Path, n: usize) -> Self {
        let dir = base.join(format!("fan-{n}"));
        std::fs::create_dir_all(dir.join("inputs")).expect("a folder for the inputs");
        for i in 0..n {
            std::fs::write(
                dir.join(format!("inputs/f{i:05}.txt")),
                format!("input {i}\n"),
            )
            .expect("write an input");
        }
        std::fs::write(
            dir.join("flow.toml"),
            format!(
                "version = 1\nname = \"fan\"\n[agents.stamp]\nkind = \"command\"\n\
                 command = [{STAMP}]\n[nodes.n]\nagent = \"stamp\"\n\
                 prompt = \"work on {{{{ item }}}}\"\nfor_each = {{ glob = \"inputs/*.txt\" }}\n\
                 inputs = [\"{{{{ item }}}}\"]\nstop = {{ exit_zero = true }}\n"
            ),
        )
        .expect("write the workflow");
        Self {
            n,
            empty_root: base.join(format!("runs-{n}-never-applied")),
            root: base.join(format!("runs-{n}")),
            dir,
        }
    }

    fn plan(&self, root: &Path) -> Command {
        conductor(&self.dir, &["plan", "flow.toml"], root)
    }

    fn apply(&self) -> Command {
        let mut cmd = conductor(&self.dir, &["apply", "flow.toml"], &self.root);
        cmd.args(["--max-parallel", "64", "--grace", "300ms"]);
        cmd
    }

    /// How many instances `plan` calls up to date.
    fn planned_up_to_date(&self, root: &Path) -> String {
        let text = stdout_of(self.plan(root));
        text.lines()
            .find(|l| l.starts_with("up to date:"))
            .expect("plan says what is up to date")
            .to_owned()
    }

    /// The `--json` summary's counts of one apply.
    fn apply_counts(&self) -> serde_json::Value {
        let mut cmd = self.apply();
        cmd.arg("--json");
        let s: serde_json::Value = serde_json::from_str(&stdout_of(cmd)).expect("a JSON summary");
        s["counts"].clone()
    }
}

fn fan_out_benches(c: &mut Criterion, sizes: &[usize]) -> Vec<FanOut> {
    let base = base();
    let mut flows = Vec::new();
    for &n in sizes {
        let flow = FanOut::new(&base, n);
        let unit = if n == 1 { "" } else { "s" };
        assert_eq!(
            flow.planned_up_to_date(&flow.empty_root),
            format!("up to date: 0 of {n} instance{unit} (apply runs the others)")
        );
        let mut group = c.benchmark_group("plan_fingerprints");
        group.sample_size(10).sampling_mode(SamplingMode::Flat);
        group.bench_function(BenchmarkId::new("new", n), |b| {
            b.iter(|| run(flow.plan(&flow.empty_root)));
        });
        group.finish();

        let start = Instant::now();
        let counts = flow.apply_counts();
        println!(
            "first apply of {n} instances (agent `sh -c date`, --max-parallel 64): {:.1} s",
            start.elapsed().as_secs_f64()
        );
        assert_eq!(counts["done"], n, "{counts}");
        assert_eq!(
            flow.planned_up_to_date(&flow.root),
            format!("up to date: {n} of {n} instance{unit} (apply runs the others)")
        );
        let counts = flow.apply_counts();
        assert_eq!(counts["up_to_date"], n, "{counts}");

        let mut group = c.benchmark_group("plan_fingerprints");
        group.sample_size(10).sampling_mode(SamplingMode::Flat);
        group.bench_function(BenchmarkId::new("up_to_date", n), |b| {
            b.iter(|| run(flow.plan(&flow.root)));
        });
        group.finish();
        let mut group = c.benchmark_group("apply_up_to_date");
        group.sample_size(10).sampling_mode(SamplingMode::Flat);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| run(flow.apply()));
        });
        group.finish();
        flows.push(flow);
    }
    flows
}

/// A running `conductor watch`, its stderr in a file.
struct Watching {
    child: Child,
    log: PathBuf,
}

impl Watching {
    fn start(dir: &Path, root: &Path) -> Self {
        let log = dir.join("watch.log");
        let stderr = std::fs::File::create(&log).expect("a log file");
        let child = conductor(dir, &["watch", "flow.toml", "--grace", "300ms"], root)
            .args(["--max-parallel", "64"])
            .stderr(stderr)
            .spawn()
            .expect("conductor watch starts");
        let w = Self { child, log };
        w.wait_idle(1, Duration::from_mins(2));
        w
    }

    fn idles(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(IDLE)
            .count()
    }

    fn wait_idle(&self, n: usize, limit: Duration) {
        let start = Instant::now();
        while self.idles() < n {
            assert!(
                start.elapsed() < limit,
                "watch not idle in time:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        // Ctrl-C: the watch stops its agents and its watchdog itself.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn epoch_nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_nanos()
}

/// Waits for the agent's `started` file; the time it holds.
fn wait_stamp(stamp: &Path) -> u128 {
    let start = Instant::now();
    loop {
        // `date` writes the whole line at once; an empty file is not yet.
        if let Some(ns) = std::fs::read_to_string(stamp)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return ns;
        }
        assert!(start.elapsed() < Duration::from_mins(1), "no agent started");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// From just before `save` to the agent's own stamp, then waits for the
/// watch to be idle again.
fn save_to_start(w: &Watching, dir: &Path, save: impl FnOnce()) -> Duration {
    let stamp = dir.join("started");
    let _ = std::fs::remove_file(&stamp);
    let idle = w.idles();
    // Let the removal's event pass: it counts for nothing, but a burst in
    // progress would start the next one early.
    std::thread::sleep(Duration::from_millis(100));
    let before = epoch_nanos(SystemTime::now());
    save();
    let started = wait_stamp(&stamp);
    w.wait_idle(idle + 1, Duration::from_mins(2));
    let ns = started.saturating_sub(before);
    Duration::from_nanos(u64::try_from(ns).expect("fits"))
}

/// The agent command alone: spawned directly, from before the spawn to its
/// stamp.
fn stamp_floor(dir: &Path, rounds: usize) -> Duration {
    let stamp = dir.join("started");
    let times = (0..rounds)
        .map(|_| {
            let _ = std::fs::remove_file(&stamp);
            let before = epoch_nanos(SystemTime::now());
            let status = Command::new("sh")
                .args(["-c", "date +%s%N > started"])
                .current_dir(dir)
                .status()
                .expect("sh runs");
            assert!(status.success());
            let ns = wait_stamp(&stamp).saturating_sub(before);
            Duration::from_nanos(u64::try_from(ns).expect("fits"))
        })
        .collect();
    median(times)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(label: &str, times: &[Duration], floor: Duration) {
    let mut all = String::new();
    for t in times {
        let _ = write!(all, " {:.0}", ms(*t));
    }
    println!(
        "watch_save_to_agent_start/{label}: median {:.1} ms, max {:.1} ms, min {:.1} ms over {} \
         saves (bar: 150 ms); the agent's sh+date alone {:.1} ms; each (ms):{all}",
        ms(median(times.to_vec())),
        ms(*times.iter().max().expect("some rounds")),
        ms(*times.iter().min().expect("some rounds")),
        times.len(),
        ms(floor),
    );
}

fn small_workflow(prompt: &str) -> String {
    format!(
        "version = 1\nname = \"watch\"\n[agents.stamp]\nkind = \"command\"\ncommand = [{STAMP}]\n\
         [agents.other]\nkind = \"command\"\ncommand = [\"true\"]\n\
         [nodes.edited]\nagent = \"stamp\"\nprompt = \"{prompt}\"\ninputs = [\"input.txt\"]\n\
         stop = {{ exit_zero = true }}\n\
         [nodes.untouched]\nagent = \"other\"\nprompt = \"stay\"\ninputs = [\"other.txt\"]\n\
         stop = {{ exit_zero = true }}\n"
    )
}

/// A workflow of two nodes, each with its own input: one of them saved.
fn watch_small() {
    const ROUNDS: usize = 20;
    let dir = base().join("watch-small");
    std::fs::create_dir_all(&dir).expect("a folder");
    std::fs::write(dir.join("flow.toml"), small_workflow("round 0")).expect("write");
    std::fs::write(dir.join("input.txt"), "round 0").expect("write");
    std::fs::write(dir.join("other.txt"), "unchanged").expect("write");
    let floor = stamp_floor(&dir, ROUNDS);
    let w = Watching::start(&dir, &base().join("runs-watch-small"));
    let input: Vec<Duration> = (1..=ROUNDS)
        .map(|round| {
            save_to_start(&w, &dir, || {
                std::fs::write(dir.join("input.txt"), format!("round {round}")).expect("save");
            })
        })
        .collect();
    report("input_file", &input, floor);
    let workflow: Vec<Duration> = (1..=ROUNDS)
        .map(|round| {
            save_to_start(&w, &dir, || {
                std::fs::write(
                    dir.join("flow.toml"),
                    small_workflow(&format!("round {round}")),
                )
                .expect("save");
            })
        })
        .collect();
    report("workflow_prompt", &workflow, floor);
}

/// One input of the largest fan-out saved: the watch re-plans and
/// re-fingerprints all of its instances, and the apply it starts finds all
/// but one up to date.
fn watch_fan_out(flow: &FanOut) {
    const ROUNDS: usize = 5;
    let floor = stamp_floor(&flow.dir, ROUNDS);
    let start = Instant::now();
    let w = Watching::start(&flow.dir, &flow.root);
    println!(
        "watch of {} instances, all up to date: idle after {:.2} s",
        flow.n,
        start.elapsed().as_secs_f64()
    );
    let middle = flow.dir.join(format!("inputs/f{:05}.txt", flow.n / 2));
    let times: Vec<Duration> = (1..=ROUNDS)
        .map(|round| {
            save_to_start(&w, &flow.dir, || {
                std::fs::write(&middle, format!("round {round}\n")).expect("save");
            })
        })
        .collect();
    report(&format!("input_of_{}_instances", flow.n), &times, floor);
}

/// Every file of this bench lives here, under `TMPDIR`; `main` deletes it
/// at the end.
static BASE: OnceLock<PathBuf> = OnceLock::new();

fn base() -> PathBuf {
    BASE.get().expect("main sets BASE").clone()
}

/// The positional arguments cargo passes on (`cargo bench --bench incremental -- NAME`).
fn filters() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

fn wanted(name: &str) -> bool {
    let f = filters();
    f.is_empty() || f.iter().any(|f| name.contains(f.as_str()))
}

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    BASE.set(dir.path().to_owned()).expect("set once");
    // `cargo test --benches` runs each criterion bench once: a small size,
    // and no watch.
    let test_mode = std::env::args().any(|a| a == "--test" || a == "--list");
    let criterion_sections = wanted("plan_fingerprints") || wanted("apply_up_to_date");
    let watch = !test_mode && wanted("watch_save_to_agent_start");
    let sizes: &[usize] = if test_mode {
        &[100]
    } else if criterion_sections {
        &[1_000, 3_000, 10_000]
    } else if watch {
        // The watch of the largest fan-out needs it applied.
        &[10_000]
    } else {
        &[]
    };
    let mut c = Criterion::default().configure_from_args();
    let flows = fan_out_benches(&mut c, sizes);
    c.final_summary();
    if watch {
        watch_small();
        if let Some(largest) = flows.last() {
            watch_fan_out(largest);
        }
    }
}
