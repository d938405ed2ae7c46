//! conductor side by side with the Go system's `run-agent` and
//! ralph-orchestrator's `ralph` (docs/performance.md, "Side by side"), on the
//! same tiny shell agent and the same disk, whole processes, pair by pair:
//! one loop done on its first attempt, one done on its 20th (and so the cost
//! of each extra attempt), `bus post`, and peak RSS at 1 and 20 attempts.
//!
//! The peers are not built here: give their binaries in
//! `CONDUCTOR_BENCH_SEED` (the Go system's `run-agent`) and
//! `CONDUCTOR_BENCH_RALPH` (`ralph`); a peer not given is reported as skipped.
//! Every figure is taken in the temp dir (a real disk on most machines) and,
//! where it exists, in /dev/shm (tmpfs). `CONDUCTOR_BENCH_PAIRS` sets the
//! number of rounds (default 20). Within a round every tool runs once in
//! turn, so the ratios (the median of conductor / peer round by round) share
//! the noise of the moment. Nothing is deleted until the end: on ext4 a file
//! created soon after many deletions costs a scan of the freed inodes.
//!
//! The fake agent counts its attempts in `ATTEMPTS` and signals completion on
//! attempt `FAKE_AGENT_ATTEMPTS` in each tool's own way (the `DONE` file for
//! conductor and the Go system, `LOOP_COMPLETE` for ralph); on the other
//! attempts it appends the event ralph waits for, without which ralph sleeps
//! 250 ms per iteration. Every run's `ATTEMPTS` is checked after it ends.

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set itself up has nothing to measure"
)]
#![expect(
    clippy::print_stdout,
    reason = "the figures are printed for docs/performance.md"
)]

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/gnu_time.rs"]
mod gnu_time;

const CONDUCTOR: &str = env!("CARGO_BIN_EXE_conductor");
const PROMPT: &str = "Reply done and create the DONE file. Print LOOP_COMPLETE when finished.";
const POSTS: u32 = 50;
const RSS_RUNS: usize = 5;

const FAKE_AGENT: &str = r#"#!/bin/sh
case "$1" in
  --version|-v|version) echo "codex-cli 0.1.0 (fake)"; exit 0 ;;
  --help|-h) echo "fake codex: --output-format stream-json"; exit 0 ;;
esac
cat >/dev/null
d=${JRUN_TASK_FOLDER:-.}
n=0
[ -f "$d/ATTEMPTS" ] && read -r n < "$d/ATTEMPTS"
n=$((n + 1))
echo "$n" > "$d/ATTEMPTS"
echo "attempt $n"
if [ "$n" -ge "${FAKE_AGENT_ATTEMPTS:-1}" ]; then
  : > "$d/DONE"
  echo LOOP_COMPLETE
elif [ -f .ralph/current-events ]; then
  read -r ev < .ralph/current-events
  echo "{\"topic\":\"task.resume\",\"payload\":\"attempt $n\",\"ts\":\"2026-01-01T00:00:00Z\"}" >> "$ev"
fi
exit 0
"#;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Conductor,
    Seed,
    Ralph,
}

struct Tool {
    kind: Kind,
    name: &'static str,
    bin: PathBuf,
}

/// One disk's folder: the fake agent, each tool's configuration, and a
/// counter for fresh runs roots and workspaces.
struct Place {
    dir: PathBuf,
    fs: String,
    runs: u32,
}

impl Place {
    fn new(parent: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("side-by-side-")
            .tempdir_in(parent)
            .expect("a folder for the bench")
            .keep();
        for sub in ["fake", "cond", "seed/work", "home", "ralph", "runs", "ws"] {
            std::fs::create_dir_all(dir.join(sub)).expect("the bench's folders");
        }
        let fake = dir.join("fake/codex");
        std::fs::write(&fake, FAKE_AGENT).expect("write the fake agent");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))
            .expect("make the fake agent executable");
        let fake = fake.display();
        std::fs::write(
            dir.join("cond/flow.toml"),
            format!(
                "version = 1\nname = \"bench\"\n[agents.a]\nkind = \"command\"\n\
                 command = [\"{fake}\"]\n[nodes.n]\nagent = \"a\"\nprompt = \"{PROMPT}\"\n\
                 stop = {{ done_file = true, max_iterations = 30 }}\n"
            ),
        )
        .expect("write the workflow");
        std::fs::write(
            dir.join("seed/config.yaml"),
            format!(
                "agents:\n  codex:\n    type: codex\ndefaults:\n  agent: codex\n  timeout: 60\n\
                 storage:\n  runs_dir: {}\n",
                dir.join("seed/runs").display()
            ),
        )
        .expect("write the seed's config");
        std::fs::write(
            dir.join("ralph/ralph.yml"),
            format!(
                "cli:\n  backend: custom\n  command: {fake}\n  prompt_mode: stdin\n\
                 event_loop:\n  completion_promise: LOOP_COMPLETE\n  max_iterations: 30\n  \
                 cooldown_delay_seconds: 0\n"
            ),
        )
        .expect("write ralph's config");
        let fs = fs_type(&dir);
        Self { dir, fs, runs: 0 }
    }

    fn fresh(&mut self, what: &str) -> PathBuf {
        self.runs += 1;
        self.dir.join(what).join(format!("r{}", self.runs))
    }

    /// The command for one loop whose agent is done on attempt `attempts`,
    /// and the folder under which its `ATTEMPTS` file will be.
    fn one_loop(&mut self, tool: &Tool, attempts: u32) -> (Command, PathBuf) {
        let mut cmd = Command::new(&tool.bin);
        cmd.env("FAKE_AGENT_ATTEMPTS", attempts.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let place = match tool.kind {
            Kind::Conductor => {
                let root = self.fresh("runs");
                cmd.current_dir(self.dir.join("cond"))
                    .args(["apply", "flow.toml", "--root"])
                    .arg(&root);
                root
            }
            Kind::Seed => {
                let root = self.fresh("runs");
                let path = std::env::var_os("PATH").unwrap_or_default();
                let mut dirs = vec![self.dir.join("fake")];
                dirs.extend(std::env::split_paths(&path));
                cmd.current_dir(self.dir.join("seed/work"))
                    .env("HOME", self.dir.join("home"))
                    .env("JRUN_PROJECT_ID", "demo")
                    .env("PATH", std::env::join_paths(dirs).expect("a PATH"))
                    .arg("task")
                    .arg("--config")
                    .arg(self.dir.join("seed/config.yaml"))
                    .arg("--root")
                    .arg(&root)
                    .arg(format!("--task=task-20260101-000000-r{}", self.runs))
                    .args(["--agent", "codex", "--prompt", PROMPT])
                    .args(["--restart-delay", "1ns", "--max-restarts", "25"]);
                root
            }
            Kind::Ralph => {
                let ws = self.fresh("ws");
                std::fs::create_dir(&ws).expect("ralph's workspace");
                cmd.current_dir(&ws)
                    .arg("run")
                    .arg("-c")
                    .arg(self.dir.join("ralph/ralph.yml"))
                    .args(["-a", "-q", "-p", PROMPT]);
                ws
            }
        };
        (cmd, place)
    }

    /// `POSTS` posts in a row, one process each, to one task's bus (ralph has
    /// no bus: `ralph emit` is what its agents run to publish an event).
    fn posts(&mut self, tool: &Tool) -> Duration {
        let root = self.fresh("runs");
        let task = root.join("demo/task-20260101-000000-post");
        std::fs::create_dir_all(&task).expect("the task's folder");
        let start = Instant::now();
        for i in 0..POSTS {
            let body = format!("message {i} from the benchmark loop");
            let mut cmd = Command::new(&tool.bin);
            if tool.kind == Kind::Ralph {
                cmd.args(["emit", "task.resume", &body, "--file"])
                    .arg(task.join("events.jsonl"));
            } else {
                cmd.args(["bus", "post", "--root"]).arg(&root).args([
                    "--project",
                    "demo",
                    "--task",
                    "task-20260101-000000-post",
                    "--type",
                    "INFO",
                    "--body",
                    &body,
                ]);
            }
            let status = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("the tool runs");
            assert!(status.success(), "{} bus post: {status}", tool.name);
        }
        start.elapsed() / POSTS
    }
}

/// The file system `dir` is on, from the longest mount point above it.
fn fs_type(dir: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (point, kind) = (f.nth(1)?, f.next()?);
            dir.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "unknown".to_owned(), |(_, kind)| kind)
}

/// A file named `name` anywhere under `dir`.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if entry.file_name() == name {
            return Some(path);
        }
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(found) = find(&path, name)
        {
            return Some(found);
        }
    }
    None
}

/// Times one loop and checks that its agent ran exactly `attempts` times.
fn timed_loop(place: &mut Place, tool: &Tool, attempts: u32) -> Duration {
    let (mut cmd, folder) = place.one_loop(tool, attempts);
    let start = Instant::now();
    let status = cmd.status().expect("the tool runs");
    let wall = start.elapsed();
    assert!(status.success(), "{}: {status}", tool.name);
    let count = find(&folder, "ATTEMPTS")
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default();
    assert_eq!(count.trim(), attempts.to_string(), "{} attempts", tool.name);
    wall
}

/// Peak RSS of one loop (see `support/gnu_time.rs`); the run must succeed.
fn peak_rss_kib(place: &mut Place, tool: &Tool, attempts: u32) -> Option<u64> {
    let report = place.fresh("runs").with_extension("time");
    let (cmd, _) = place.one_loop(tool, attempts);
    let (status, kib) = gnu_time::peak_rss_kib(&cmd, &report)?;
    assert!(status.success(), "{}: {status}", tool.name);
    kib
}

/// Median (min-max) of a series, in the unit `unit` names.
fn summary(mut v: Vec<f64>, unit: &str) -> String {
    if v.is_empty() {
        return "skipped".to_owned();
    }
    v.sort_by(f64::total_cmp);
    let (lo, mid, hi) = (v[0], v[v.len() / 2], v[v.len() - 1]);
    format!("{mid:.2}{unit} ({lo:.2}-{hi:.2})")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Every figure of one tool on one disk, round by round.
#[derive(Default)]
struct Figures {
    first: Vec<f64>,
    twenty: Vec<f64>,
    extra: Vec<f64>,
    post: Vec<f64>,
    rss1: Vec<f64>,
    rss20: Vec<f64>,
}

const MEASURES: [(&str, &str); 6] = [
    ("one loop done on its 1st attempt", " ms"),
    ("one loop done on its 20th attempt", " ms"),
    ("each extra attempt, (20th - 1st) / 19", " ms"),
    ("bus post, one process", " ms"),
    ("peak RSS, 1 attempt", " MiB"),
    ("peak RSS, 20 attempts", " MiB"),
];

impl Figures {
    fn series(&self, i: usize) -> &[f64] {
        [
            &self.first,
            &self.twenty,
            &self.extra,
            &self.post,
            &self.rss1,
            &self.rss20,
        ][i]
    }
}

fn measure(place: &mut Place, tools: &[Tool], pairs: usize) -> Vec<Figures> {
    let mut figures: Vec<Figures> = tools.iter().map(|_| Figures::default()).collect();
    // Two rounds of warm-up fill the page cache with every binary.
    for round in 0..pairs + 2 {
        for (tool, f) in tools.iter().zip(&mut figures) {
            let one = ms(timed_loop(place, tool, 1));
            let twenty = ms(timed_loop(place, tool, 20));
            let post = ms(place.posts(tool));
            if round >= 2 {
                f.first.push(one);
                f.twenty.push(twenty);
                f.extra.push((twenty - one) / 19.0);
                f.post.push(post);
            }
        }
    }
    for _ in 0..RSS_RUNS {
        for (tool, f) in tools.iter().zip(&mut figures) {
            #[expect(clippy::cast_precision_loss, reason = "sizes in MiB need no precision")]
            let mib = |kib: u64| kib as f64 / 1024.0;
            if let Some(kib) = peak_rss_kib(place, tool, 1) {
                f.rss1.push(mib(kib));
            }
            if let Some(kib) = peak_rss_kib(place, tool, 20) {
                f.rss20.push(mib(kib));
            }
        }
    }
    figures
}

fn report(place: &Place, tools: &[Tool], figures: &[Figures], pairs: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "side_by_side on {} ({}), {pairs} rounds, median (min-max):",
        place.dir.display(),
        place.fs
    );
    for (i, (label, unit)) in MEASURES.iter().enumerate() {
        let _ = writeln!(out, "  {label}");
        for (tool, f) in tools.iter().zip(figures) {
            let _ = writeln!(
                out,
                "    {:<10} {}",
                tool.name,
                summary(f.series(i).to_vec(), unit)
            );
        }
        for (tool, f) in tools.iter().zip(figures).skip(1) {
            let ratios: Vec<f64> = figures[0]
                .series(i)
                .iter()
                .zip(f.series(i))
                .map(|(c, p)| c / p)
                .collect();
            let _ = writeln!(
                out,
                "    conductor / {}: {}",
                tool.name,
                summary(ratios, "")
            );
        }
    }
    out
}

fn peer(kind: Kind, name: &'static str, var: &str, what: &str) -> Option<Tool> {
    match std::env::var_os(var) {
        Some(bin) => Some(Tool {
            kind,
            name,
            bin: bin.into(),
        }),
        None => {
            println!("side_by_side: {name} skipped: set {var} to {what}");
            None
        }
    }
}

fn main() {
    // `cargo test --benches` lists or runs each bench once; this one takes
    // minutes, so it is left to `cargo bench`.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let pairs = std::env::var("CONDUCTOR_BENCH_PAIRS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(20);
    let mut tools = vec![Tool {
        kind: Kind::Conductor,
        name: "conductor",
        bin: CONDUCTOR.into(),
    }];
    tools.extend(peer(
        Kind::Seed,
        "seed",
        "CONDUCTOR_BENCH_SEED",
        "the Go system's run-agent binary",
    ));
    tools.extend(peer(
        Kind::Ralph,
        "ralph",
        "CONDUCTOR_BENCH_RALPH",
        "ralph-orchestrator's ralph binary",
    ));
    let mut parents = vec![std::env::temp_dir()];
    if Path::new("/dev/shm").is_dir() {
        parents.push("/dev/shm".into());
    }
    for parent in parents {
        let mut place = Place::new(&parent);
        let figures = measure(&mut place, &tools, pairs);
        print!("{}", report(&place, &tools, &figures, pairs));
        std::fs::remove_dir_all(&place.dir).expect("remove the bench's folder");
    }
}
