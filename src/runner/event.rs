//! Owns the one event type of a run. The dispatcher turns each event into a
//! project-bus record and hands the same event to the console reporter, and
//! the summary the JSON and JUnit reports print is built from them too.

use std::sync::Arc;
use std::time::Duration;

use super::outcome::Outcome;
use super::verdict::Verdict;
use crate::stop_reason::StopReason;

/// Receives every event, in order (the console reporter).
pub(crate) trait Observer {
    fn event(&mut self, event: &Event);
}

/// Something that happened in an apply.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// The apply started; `instances` counts the plan's (run-time fan-outs once).
    WorkflowStarted {
        apply_id: String,
        workflow: String,
        instances: usize,
        /// Of those, run-time fan-outs: each becomes its items when its
        /// source is done.
        fan_outs: usize,
        /// `<root>/<project>`: task folders are inside.
        project_dir: std::path::PathBuf,
        /// The workflow's budget in US dollars, when it has one.
        budget_usd: Option<f64>,
    },
    /// An instance's task folder exists and its loop begins.
    InstanceStarted { key: Arc<str>, task_id: String },
    /// One iteration's agent is running.
    IterationStarted {
        key: Arc<str>,
        iteration: u32,
        max_iterations: u32,
        run_id: String,
        agent: String,
        kind: crate::model::AgentKind,
    },
    /// One iteration's agent exited; `verdict` says what the loop made of it.
    IterationFinished {
        key: Arc<str>,
        iteration: u32,
        exit_code: i32,
        verdict: Verdict,
        duration: Duration,
        /// What the iteration used (tokens, cost).
        usage: crate::agents::usage::Usage,
    },
    /// How many instances are ready to start but wait for a slot (the
    /// others that have not started wait for their needs). Told when it
    /// changes; not recorded on the bus.
    Queued { queued: usize },
    /// A run-time fan-out became these instances.
    Expanded {
        key: Arc<str>,
        instances: Vec<Arc<str>>,
    },
    /// An instance ended (done, failed or skipped).
    InstanceFinished {
        key: Arc<str>,
        outcome: Arc<Outcome>,
    },
    /// A looping sub-workflow starts its inner instances again.
    GroupRestarted {
        key: Arc<str>,
        round: u32,
        max_rounds: u32,
        /// Why the last round did not finish it.
        why: String,
    },
    /// A `[success]` command finished (or could not start: exit code -1,
    /// and why).
    SuccessChecked {
        command: String,
        exit_code: i32,
        error: Option<String>,
        /// The last lines it printed, redacted.
        tail: String,
    },
    /// A watch starts an apply after files changed: what changed, and the
    /// instances that are not up to date.
    Triggered {
        why: String,
        will_run: Vec<Arc<str>>,
    },
    /// A watch put a new plan in force: what changed, and the running
    /// instances it stopped to run again.
    Replanned {
        why: String,
        restarted: Vec<Arc<str>>,
        /// Other instances the new plan runs (not up to date).
        will_run: Vec<Arc<str>>,
    },
    /// A failed instance whose every dependent is a gate that passed: the
    /// failure is reported, not fatal, and a later apply keeps it while
    /// its fingerprint holds.
    Tolerated {
        key: Arc<str>,
        /// The gates that passed over it.
        gates: Vec<Arc<str>>,
    },
    /// An instance done in this apply whose `inputs` the apply changed
    /// after it ran (a dependent wrote them): the next apply runs it again.
    InputsChanged { key: Arc<str>, files: Vec<String> },
    /// A ready instance waits for `other`, running, whose declared writes
    /// overlap its own (the two globs that meet).
    WaitingForWrites {
        key: Arc<str>,
        other: Arc<str>,
        globs: (String, String),
    },
    /// A merge node merged an instance's branch (`Ok`: how) or left it
    /// unmerged (`Err`: why).
    Landed {
        key: Arc<str>,
        instance: Arc<str>,
        branch: String,
        target: String,
        result: Result<String, String>,
    },
    /// An isolated instance changed files outside its node's declared
    /// `writes`.
    OutsideWrites { key: Arc<str>, files: Vec<String> },
    /// Isolated instances that ran side by side changed the same files
    /// (docs/isolation.md, "Overlaps").
    Overlapped {
        instances: Vec<Arc<str>>,
        files: Vec<String>,
    },
    /// A failure tolerated by an earlier apply that no gate tolerates now:
    /// it no longer stands, and the next apply runs the instance again.
    NoLongerTolerated { key: Arc<str> },
    /// Before the apply starts: these agent CLIs are being asked their
    /// version (once per binary; it can take seconds).
    AskingVersions { programs: Vec<String> },
    /// A stop was requested (Ctrl-C, SIGTERM, SIGHUP, `--fail-fast`).
    Stopping { reason: StopReason },
    /// Earlier applies whose conductor died were closed before this one
    /// started: their unfinished runs are marked failed.
    StaleFinalised { applies: usize, runs: usize },
}
