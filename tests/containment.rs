//! Containment (docs/security.md): nothing an agent starts outlives its
//! run, however it detaches (`setsid`, a double fork, `set -m`, Node's
//! `detached: true`, `env -i` then `setsid`), whether the run ends by
//! itself, by its timeout, by Ctrl-C, SIGTERM, a watch's re-plan, or by
//! conductor being killed (SIGKILL). Each case runs under `--containment
//! subreaper`; the `cgroup` ones need a cgroup v2 hierarchy this user may
//! write to, so they are ignored here and `.ci/run` runs them where the
//! machine allows (and says when it does not).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::apply_support::{Flow, processes_with_env, wait_for};

/// An agent that starts five processes that leave its process group or
/// its parentage, each recording its pid in `pids` and then sleeping
/// `$HOLD` seconds; then it exits (`$THEN` = `exit`) or sleeps too.
const ESCAPE: &str = r#"
setsid sh -c 'echo $$ >> pids; exec sleep $HOLD' &
(sh -c 'echo $$ >> pids; exec sleep $HOLD' &)
sh -c 'set -m; sleep $HOLD & echo $! >> pids'
node -e "require('child_process').spawn('sh', ['-c', 'echo \$\$ >> pids; exec sleep ' + process.env.HOLD], {detached: true, stdio: 'ignore'}).unref()"
env -i HOLD=$HOLD setsid sh -c 'echo $$ >> pids; exec sleep $HOLD' &
while [ "$(wc -l < pids)" -lt 5 ]; do sleep 0.02; done
if [ "$THEN" = exit ]; then exit 0; fi
exec sleep $HOLD
"#;

/// A distinct sleep length per test, so that one test's processes are
/// never taken for another's.
fn hold() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}",
        7000 + std::process::id() % 1000 * 20 + NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

struct Case {
    flow: Flow,
    hold: String,
    containment: &'static str,
}

impl Case {
    /// A one-node workflow running [`ESCAPE`] with `stop`.
    fn new(containment: &'static str, then: &str, stop: &str) -> Self {
        let hold = hold();
        let flow = Flow::new(&format!(
            r#"version = 1
name = "t"
[agents.escape]
kind = "command"
command = ["sh", "escape.sh"]
env = {{ HOLD = "{hold}", THEN = "{then}" }}
[nodes.n]
agent = "escape"
prompt = "work"
stop = {stop}
"#
        ));
        std::fs::write(flow.path().join("escape.sh"), ESCAPE).unwrap();
        std::fs::write(flow.path().join("pids"), "").unwrap();
        Self {
            flow,
            hold,
            containment,
        }
    }

    fn command(&self, verb: &str) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("conductor"));
        cmd.current_dir(self.flow.path())
            .args([verb, "flow.toml", "--grace", "300ms", "--root"])
            .arg(self.flow.root())
            .args(["--containment", self.containment])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    fn spawn(&self) -> Child {
        self.command("apply").spawn().unwrap()
    }

    fn started(&self, n: usize) {
        wait_for("the escaping processes to start", || {
            crate::apply_support::pids(&self.flow.path().join("pids")).len() >= n
        });
    }

    /// What of the run is still alive (the agent and all it started carry
    /// `HOLD`).
    fn left(&self) -> Vec<(u32, String)> {
        processes_with_env(&format!("HOLD={}", self.hold))
    }

    /// Nothing of the run is left now.
    fn assert_gone(&self) {
        let left = self.left();
        assert!(left.is_empty(), "outlived their run: {left:?}");
        self.assert_contained_as_asked();
    }

    /// The runs were contained as asked (their run-info says how).
    fn assert_contained_as_asked(&self) {
        let infos = self.flow.files_named("run-info.yaml");
        assert!(!infos.is_empty());
        for info in infos {
            let text = std::fs::read_to_string(&info).unwrap();
            assert!(
                text.contains(&format!("containment: {}", self.containment))
                    || text.contains(&format!("containment: \"{}", self.containment)),
                "{}: {text}",
                info.display()
            );
        }
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn a_run_that_ends_takes_everything_it_started(containment: &'static str) {
    let case = Case::new(containment, "exit", "{ exit_zero = true }");
    let status = case.command("apply").status().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        crate::apply_support::pids(&case.flow.path().join("pids")).len(),
        5
    );
    case.assert_gone();
}

fn a_timeout_takes_everything_the_run_started(containment: &'static str) {
    let case = Case::new(
        containment,
        "sleep",
        r#"{ timeout = "2s", max_iterations = 1 }"#,
    );
    let status = case.command("apply").status().unwrap();
    assert_eq!(status.code(), Some(1));
    case.assert_gone();
}

fn a_stop_signal_takes_everything(containment: &'static str, sig: &str, code: i32) {
    let case = Case::new(containment, "sleep", "{}");
    let mut child = case.spawn();
    case.started(5);
    signal(&child, sig);
    assert_eq!(child.wait().unwrap().code(), Some(code));
    case.assert_gone();
}

fn a_killed_conductor_takes_everything(containment: &'static str) {
    let case = Case::new(containment, "sleep", "{}");
    let mut child = case.spawn();
    case.started(5);
    signal(&child, "-KILL");
    child.wait().unwrap();
    // The keeper sees conductor go and ends the rest on its own.
    wait_for("the keeper to end the run", || case.left().is_empty());
    case.assert_contained_as_asked();
}

fn a_re_plan_takes_everything_the_old_run_started(containment: &'static str) {
    let case = Case::new(containment, "sleep", "{}");
    let mut child = case.command("watch").spawn().unwrap();
    case.started(5);
    let old = crate::apply_support::pids(&case.flow.path().join("pids"));
    let text = std::fs::read_to_string(case.flow.path().join("flow.toml")).unwrap();
    std::fs::write(
        case.flow.path().join("flow.toml"),
        text.replace("prompt = \"work\"", "prompt = \"work again\""),
    )
    .unwrap();
    // The new run starts only once the old one is gone.
    case.started(10);
    let alive: Vec<i32> = old
        .into_iter()
        .filter(|&p| crate::apply_support::alive(p))
        .collect();
    assert!(
        alive.is_empty(),
        "the old run's processes live on: {alive:?}"
    );
    signal(&child, "-INT");
    assert_eq!(child.wait().unwrap().code(), Some(130));
    case.assert_gone();
}

/// Each case, under one containment.
macro_rules! cases {
    ($module:ident, $containment:literal $(, $ignore:meta)?) => {
        mod $module {
            #[test]
            $(#[$ignore])?
            fn a_run_that_ends_takes_everything_it_started() {
                super::a_run_that_ends_takes_everything_it_started($containment);
            }

            #[test]
            $(#[$ignore])?
            fn a_timeout_takes_everything_the_run_started() {
                super::a_timeout_takes_everything_the_run_started($containment);
            }

            #[test]
            $(#[$ignore])?
            fn ctrl_c_takes_everything() {
                super::a_stop_signal_takes_everything($containment, "-INT", 130);
            }

            #[test]
            $(#[$ignore])?
            fn sigterm_takes_everything() {
                super::a_stop_signal_takes_everything($containment, "-TERM", 143);
            }

            #[test]
            $(#[$ignore])?
            fn a_killed_conductor_takes_everything() {
                super::a_killed_conductor_takes_everything($containment);
            }

            #[test]
            $(#[$ignore])?
            fn a_re_plan_takes_everything_the_old_run_started() {
                super::a_re_plan_takes_everything_the_old_run_started($containment);
            }
        }
    };
}

cases!(subreaper, "subreaper");
cases!(
    cgroup,
    "cgroup",
    ignore = "needs a writable cgroup v2 hierarchy: .ci/run runs these where the machine allows"
);

#[test]
#[ignore = "slow: 2,000 agents at once (CI runs it)"]
fn a_burst_of_starts_stays_within_a_small_descriptor_limit() {
    // 2,000 agents at once under a limit of 200 open files: each start holds
    // its three stdio files only until the keeper has them, and at most 64
    // starts are under way, so no start fails for want of a descriptor.
    // (Without that bound, conductor queued starts faster than the keeper
    // took them and ran out of descriptors.)
    let items: Vec<String> = (0..2000).map(|i| format!("\"i{i}\"")).collect();
    let flow = crate::apply_support::Flow::new(&format!(
        "version = 1\nname = \"t\"\n[agents.a]\nkind = \"command\"\ncommand = [\"sleep\", \"1\"]\n\
         [nodes.n]\nagent = \"a\"\nprompt = \"p\"\nfor_each = [{}]\nstop = {{ exit_zero = true }}\n",
        items.join(", ")
    ));
    let out = std::process::Command::new("prlimit")
        .arg("--nofile=200:200")
        .arg(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(flow.path())
        .args([
            "apply",
            "flow.toml",
            "--json",
            "--max-parallel",
            "2000",
            "--root",
        ])
        .arg(flow.root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Too many open files"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["done"], 2000);
}

#[test]
fn a_workflow_that_does_not_compile_leaves_no_process_behind() {
    // The keeper starts before the workflow is compiled (it gets ready
    // meanwhile); an apply that stops at exit 2 must not leave it running.
    let mark = format!("CONDUCTOR_TEST_MARK=no-compile-{}", hold());
    let flow =
        Flow::new("version = 1\nname = \"t\"\n[nodes.n]\nagent = \"missing\"\nprompt = \"work\"\n");
    let (key, value) = mark.split_once('=').unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(flow.path())
        .env(key, value)
        .args(["apply", "flow.toml", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    wait_for("no process of the apply left", || {
        processes_with_env(&mark).is_empty()
    });
}
