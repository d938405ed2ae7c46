//! Helpers for the apply tests: a workflow written into a fresh folder,
//! applied there with its own runs root and a short kill grace, and the
//! run store and buses it leaves read back. Tests that run one command and
//! check its exit code and output do it through `test_builder::Test`, which
//! runs in such a folder; the helpers here serve tests that start conductor
//! in the background or read the store directly.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::conductor;

/// A workflow in its own temporary folder.
pub(crate) struct Flow {
    pub dir: tempfile::TempDir,
}

impl Flow {
    pub(crate) fn new(toml: &str) -> Self {
        let flow = Self::empty();
        std::fs::write(flow.path().join("flow.toml"), toml).unwrap();
        flow
    }

    /// A fresh folder with no workflow in it yet.
    pub(crate) fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("runs")
    }

    /// `conductor apply flow.toml --json` with `extra` args; the summary is parsed.
    pub(crate) fn apply(&self, extra: &[&str]) -> (Output, serde_json::Value) {
        let out = self.command(extra).output().unwrap();
        let summary = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (out, summary)
    }

    /// `apply` in the background, its stdout piped (for `--json`).
    pub(crate) fn spawn(&self, extra: &[&str]) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("conductor"))
            .current_dir(self.path())
            .args(["apply", "flow.toml", "--root"])
            .arg(self.root())
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Every prompt.md, in run order.
    pub(crate) fn prompts(&self) -> Vec<String> {
        self.files()
            .into_iter()
            .filter(|(p, _)| p.ends_with("prompt.md"))
            .map(|(_, t)| t)
            .collect()
    }

    /// The record types of every task bus, in order.
    pub(crate) fn task_kinds(&self) -> Vec<String> {
        self.records("TASK-MESSAGE-BUS.md")
            .iter()
            .map(|r| r["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub(crate) fn command(&self, extra: &[&str]) -> assert_cmd::Command {
        let mut cmd = conductor();
        cmd.current_dir(self.path())
            .args(["apply", "flow.toml", "--json", "--grace", "300ms", "--root"])
            .arg(self.root())
            .args(extra);
        cmd
    }

    /// Every file under the runs root (not read), sorted.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.root()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    /// Every file under the runs root called `name` (not read).
    pub(crate) fn files_named(&self, name: &str) -> Vec<PathBuf> {
        self.paths()
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == name))
            .collect()
    }

    /// Every file under the runs root, with its text.
    pub(crate) fn files(&self) -> Vec<(PathBuf, String)> {
        self.paths()
            .into_iter()
            // A temporary file may be renamed away while the apply runs.
            .filter_map(|p| {
                let bytes = std::fs::read(&p).ok()?;
                Some((p, String::from_utf8_lossy(&bytes).into_owned()))
            })
            .collect()
    }

    /// The bus records of every file named `name`, in file order.
    pub(crate) fn records(&self, name: &str) -> Vec<serde_json::Value> {
        self.files()
            .into_iter()
            .filter(|(p, _)| p.file_name().is_some_and(|n| n == name))
            .flat_map(|(p, _)| {
                let out = conductor()
                    .args(["bus", "read", "--json", "--bus"])
                    .arg(&p)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub(crate) fn project_records(&self) -> Vec<serde_json::Value> {
        self.records("PROJECT-MESSAGE-BUS.md")
    }
}

/// The summary's instance with this key.
pub(crate) fn instance<'a>(summary: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    summary["instances"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["key"] == key))
        .unwrap_or_else(|| panic!("no instance {key} in {summary:#}"))
}

/// The run folders of an instance, oldest first (run ids sort in creation order).
pub(crate) fn runs(summary: &serde_json::Value, key: &str) -> Vec<PathBuf> {
    let task = Path::new(
        instance(summary, key)["task_dir"]
            .as_str()
            .unwrap_or_default(),
    );
    let mut runs: Vec<PathBuf> = std::fs::read_dir(task.join("runs"))
        .unwrap_or_else(|e| panic!("no runs folder in {}: {e}", task.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    runs
}

/// `(status, stop_reason, iterations)` of an instance.
pub(crate) fn state(summary: &serde_json::Value, key: &str) -> (String, String, u64) {
    let i = instance(summary, key);
    (
        i["status"].as_str().unwrap_or_default().to_string(),
        i["stop_reason"].as_str().unwrap_or_default().to_string(),
        i["iterations"].as_u64().unwrap_or_default(),
    )
}

/// A workflow with one agent `fake` running the fake agent with `args`,
/// and one node `n` with this `stop` table.
pub(crate) fn one_node(args: &str, stop: &str) -> String {
    format!(
        r#"version = 1
name = "t"

[agents.fake]
kind = "command"
command = ["conductor", "__fake-agent", {args}]

[nodes.n]
agent = "fake"
prompt = "work"
stop = {stop}
"#
    )
}

/// A workflow with one agent running `argv` (TOML array items) and one
/// node `n` with this `stop` table.
pub(crate) fn one_node_command(argv: &str, stop: &str) -> String {
    format!(
        r#"version = 1
name = "t"

[agents.a]
kind = "command"
command = [{argv}]

[nodes.n]
agent = "a"
prompt = "work"
stop = {stop}
"#
    )
}

/// Whether a process is alive (a zombie counts as dead).
pub(crate) fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z'))
}

/// The pids in a fake agent's `--pid-file`.
pub(crate) fn pids(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

pub(crate) fn st(s: &str, r: &str, n: u64) -> (String, String, u64) {
    (s.to_string(), r.to_string(), n)
}

/// Polls until `ok` holds (or panics after 20 s, naming `what`).
pub(crate) fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run folder's run-info.yaml, parsed.
pub(crate) fn run_info(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("run-info.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// Live processes (not zombies, not this test) whose environment holds
/// `needle`, with their command lines.
pub(crate) fn processes_with_env(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if env.split(|&b| b == 0).any(|var| var == needle.as_bytes())
            && crate::apply_support::alive(i32::try_from(pid).unwrap())
        {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            out.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    out
}

/// What `conductor apply --root ROOT ARGS` in `flow`'s folder draws on a
/// pseudo-terminal (util-linux `script`) `cols` wide, when it succeeds.
pub(crate) fn apply_on_a_terminal(flow: &Flow, cols: usize, args: &str) -> String {
    let line = format!(
        "stty cols {cols} rows 30; {} apply flow.toml --root {} {args}",
        assert_cmd::cargo::cargo_bin("conductor").display(),
        flow.root().display()
    );
    let out = std::process::Command::new("script")
        .current_dir(flow.path())
        .args(["-qec", &line, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}
