//! A fluent test of one `conductor` command, in the spirit of just's `Test`:
//! the workflow and files it needs, its arguments and environment, and the
//! exit code and output it must give, on one chain that ends in `run()`.
//!
//! The command runs in a fresh folder (a [`Flow`]), or from the repository
//! root with [`Test::in_repo`]. `run()` checks every expectation and fails
//! with conductor's stdout and stderr (and the tail of what the agents
//! printed); it returns a [`Ran`], which reads the `--json` output and the
//! run store back, and whose [`Ran::then`] runs the next command in the
//! same folder. The folder is deleted with the last `Test` or `Ran` of it,
//! so keep the `Ran` while reading files the command wrote.
//!
//! ```ignore
//! let ran = Test::new()
//!     .workflow(FLOW)
//!     .file("plan.md", "Plan the work.")
//!     .apply()
//!     .args(["--only", "b"])
//!     .status(1)
//!     .stderr_has("b: failed")
//!     .run();
//! assert_eq!(ran.state("b"), st("failed", "max_iterations", 1));
//! ran.then()
//!     .apply()
//!     .args(["--only", "bb"])
//!     .status(2)
//!     .stderr_has("did you mean `b`?")
//!     .run();
//! ```

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::apply_support::{Flow, instance, runs, state};
use crate::support::conductor;

/// What a command must exit with.
#[derive(Debug, Clone, Copy)]
enum Status {
    Code(i32),
    /// Any exit code but 0.
    Failure,
}

/// One expectation on stdout or stderr.
#[derive(Debug)]
enum Expect {
    Is(String),
    Has(String),
    Lacks(String),
}

/// One `conductor` command and what it must do; see the module docs.
#[must_use = "a test does nothing until `run()`"]
pub(crate) struct Test {
    flow: Rc<Flow>,
    in_repo: bool,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    status: Status,
    stdout: Vec<Expect>,
    stderr: Vec<Expect>,
    timeout: Option<Duration>,
}

impl Test {
    /// A command run in a fresh, empty folder.
    pub(crate) fn new() -> Self {
        Self::at(Rc::new(Flow::empty()), false)
    }

    /// A command run from the repository root, as `support::run` does, so
    /// that paths such as `examples/hello/workflow.toml` work. It still has
    /// a fresh folder, for [`Test::with_root`] and written files.
    pub(crate) fn in_repo() -> Self {
        Self::at(Rc::new(Flow::empty()), true)
    }

    fn at(flow: Rc<Flow>, in_repo: bool) -> Self {
        Self {
            flow,
            in_repo,
            args: Vec::new(),
            env: Vec::new(),
            status: Status::Code(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
            timeout: None,
        }
    }

    /// Writes the workflow as `flow.toml` in the folder.
    pub(crate) fn workflow(self, toml: impl AsRef<str>) -> Self {
        self.file("flow.toml", toml.as_ref())
    }

    /// Writes a file in the folder, making its parent folders.
    pub(crate) fn file(self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Self {
        let path = self.flow.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        self
    }

    /// Makes a folder (and its parents) in the folder.
    pub(crate) fn dir(self, path: impl AsRef<Path>) -> Self {
        std::fs::create_dir_all(self.flow.path().join(path)).unwrap();
        self
    }

    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `apply flow.toml --json` with the folder's own runs root and a short
    /// kill grace, as [`Flow::command`] runs it; more args may follow.
    pub(crate) fn apply(self) -> Self {
        let root = self.flow.root();
        self.args(["apply", "flow.toml", "--json", "--grace", "300ms", "--root"])
            .arg(root)
    }

    /// `--root` with the folder's runs root, which is empty until an apply
    /// writes to it: a command that reads the run store sees a fresh one.
    pub(crate) fn with_root(self) -> Self {
        let root = self.flow.root();
        self.arg("--root").arg(root)
    }

    pub(crate) fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    pub(crate) fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env.push((key.into(), None));
        self
    }

    /// The exit code the command must give (0 unless said otherwise).
    pub(crate) fn status(mut self, code: i32) -> Self {
        self.status = Status::Code(code);
        self
    }

    /// The command must fail, with any exit code but 0.
    pub(crate) fn failure(mut self) -> Self {
        self.status = Status::Failure;
        self
    }

    /// Stdout must be exactly this.
    pub(crate) fn stdout(mut self, text: impl Into<String>) -> Self {
        self.stdout.push(Expect::Is(text.into()));
        self
    }

    pub(crate) fn stdout_has(mut self, text: impl Into<String>) -> Self {
        self.stdout.push(Expect::Has(text.into()));
        self
    }

    pub(crate) fn stdout_lacks(mut self, text: impl Into<String>) -> Self {
        self.stdout.push(Expect::Lacks(text.into()));
        self
    }

    pub(crate) fn stderr_has(mut self, text: impl Into<String>) -> Self {
        self.stderr.push(Expect::Has(text.into()));
        self
    }

    pub(crate) fn stderr_lacks(mut self, text: impl Into<String>) -> Self {
        self.stderr.push(Expect::Lacks(text.into()));
        self
    }

    /// Kills the command after this long (the run then fails on its status).
    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// `conductor ARGS` as a shell user would read it.
    fn command_line(&self) -> String {
        std::iter::once("conductor".into())
            .chain(self.args.iter().map(|a| a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command and checks every expectation; all that failed are
    /// reported together, with the command's output.
    #[track_caller]
    pub(crate) fn run(self) -> Ran {
        let mut cmd = conductor();
        if !self.in_repo {
            cmd.current_dir(self.flow.path());
        }
        cmd.args(&self.args);
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        if let Some(t) = self.timeout {
            cmd.timeout(t);
        }
        let out = cmd.output().expect("conductor runs");
        let ran = Ran {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
            json: serde_json::from_slice(&out.stdout).ok(),
            flow: Rc::clone(&self.flow),
            in_repo: self.in_repo,
        };

        let mut problems = Vec::new();
        match self.status {
            Status::Code(want) if ran.code != Some(want) => {
                problems.push(format!("exit code {:?}, expected {want}", ran.code));
            }
            Status::Failure if ran.code == Some(0) => {
                problems.push("exit code 0, expected a failure".to_string());
            }
            _ => {}
        }
        for (name, text, expects) in [
            ("stdout", &ran.stdout, &self.stdout),
            ("stderr", &ran.stderr, &self.stderr),
        ] {
            for e in expects {
                match e {
                    Expect::Is(want) if text != want => {
                        problems.push(format!("{name} is not {want:?}"));
                    }
                    Expect::Has(want) if !text.contains(want.as_str()) => {
                        problems.push(format!("{name} lacks {want:?}"));
                    }
                    Expect::Lacks(unwanted) if text.contains(unwanted.as_str()) => {
                        problems.push(format!("{name} has {unwanted:?}"));
                    }
                    _ => {}
                }
            }
        }
        assert!(
            problems.is_empty(),
            "`{}`: {}\n{}",
            self.command_line(),
            problems.join("; "),
            ran.explain()
        );
        ran
    }
}

/// Lets a test read the folder (path, runs root, run store) before and
/// after the command, as it would a [`Flow`].
impl Deref for Test {
    type Target = Flow;

    fn deref(&self) -> &Flow {
        &self.flow
    }
}

/// A command that ran as expected: its output, and the folder it ran in.
pub(crate) struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
    json: Option<serde_json::Value>,
    flow: Rc<Flow>,
    in_repo: bool,
}

impl Ran {
    /// Stdout parsed as JSON: the summary of `apply --json`, or the plan.
    #[track_caller]
    pub(crate) fn json(&self) -> &serde_json::Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("stdout is not JSON:\n{}", self.explain()))
    }

    /// The summary's instance with this key.
    #[track_caller]
    pub(crate) fn instance(&self, key: &str) -> &serde_json::Value {
        instance(self.json(), key)
    }

    /// `(status, stop_reason, iterations)` of an instance in the summary.
    #[track_caller]
    pub(crate) fn state(&self, key: &str) -> (String, String, u64) {
        state(self.json(), key)
    }

    /// The keys of the summary's (or the plan's) instances, in order.
    #[track_caller]
    pub(crate) fn keys(&self) -> Vec<String> {
        self.json()["instances"]
            .as_array()
            .unwrap_or_else(|| panic!("no instances:\n{}", self.explain()))
            .iter()
            .map(|i| i["key"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// An instance's run folders, oldest first.
    #[track_caller]
    pub(crate) fn runs(&self, key: &str) -> Vec<PathBuf> {
        runs(self.json(), key)
    }

    /// An instance's answer: the `output.md` of its latest run.
    #[track_caller]
    pub(crate) fn output(&self, key: &str) -> String {
        let runs = self.runs(key);
        let last = runs
            .last()
            .unwrap_or_else(|| panic!("{key} has no run:\n{}", self.explain()));
        std::fs::read_to_string(last.join("output.md")).unwrap()
    }

    /// The next command, in the same folder (and from the same place).
    pub(crate) fn then(&self) -> Test {
        Test::at(Rc::clone(&self.flow), self.in_repo)
    }

    /// The exit code, stdout and stderr, each run's record and the end of
    /// what its agent printed: all a failed expectation needs to be
    /// understood.
    pub(crate) fn explain(&self) -> String {
        let mut text = format!(
            "exit code {:?}\n--- conductor stdout\n{}\n--- conductor stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        for path in self.flow.paths() {
            if path.file_name().is_some_and(|n| {
                n == "run-info.yaml" || n == "agent-stdout.txt" || n == "agent-stderr.txt"
            }) {
                let _ = write!(text, "\n--- {}\n{}", path.display(), tail(&path, 4000));
            }
        }
        text
    }
}

/// Lets a test read the run store the command left, as it would a [`Flow`].
impl Deref for Ran {
    type Target = Flow;

    fn deref(&self) -> &Flow {
        &self.flow
    }
}

/// The last `bytes` bytes of a file as text, without reading all of a
/// flood of agent output.
fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
