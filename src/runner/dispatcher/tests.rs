//! The dispatcher's scheduling rules, run in-process: a workflow is
//! compiled and planned for real, and its units are started through a
//! launcher that returns scripted outcomes after a pause of virtual time,
//! recording what ran when. No agent, process or second thread is
//! involved, so each rule costs milliseconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::{Control, Dispatcher, Limits, Setup};
use crate::compile::Program;
use crate::plan::Plan;
use crate::process::{StopLevel, Supervisor};
use crate::runner::context::{Shared, WorkflowLimits};
use crate::runner::event::{Event, Observer};
use crate::runner::job::{Job, PerJob};
use crate::runner::launcher::{GroupCheck, Launcher, UnitFuture, UnitStart};
use crate::runner::outcome::{Outcome, Status};
use crate::stop_reason::{Condition, StopReason};

/// A workflow compiled and planned in a folder of its own.
struct Flow {
    dir: tempfile::TempDir,
    program: Arc<Program>,
    plan: Plan,
}

impl Flow {
    fn new(nodes: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "version = 1\nname = \"t\"\n[agents.a]\nkind = \"command\"\ncommand = [\"true\"]\n[defaults]\nagent = \"a\"\nstop = {{ exit_zero = true, max_iterations = 1 }}\n{nodes}"
        );
        let file = dir.path().join("flow.toml");
        std::fs::write(&file, text).unwrap();
        let mut c = crate::compile::compile(&file, &[]);
        let program = c
            .program
            .take()
            .unwrap_or_else(|| panic!("the workflow compiles: {:#?}", c.diagnostics.into_vec()));
        let (plan, diags) = crate::plan::plan(
            &program,
            &mut c.sources,
            crate::plan::PlanOptions::default(),
        );
        assert!(!diags.has_errors(), "{:#?}", diags.into_vec());
        Self {
            dir,
            program: Arc::new(program),
            plan,
        }
    }

    fn jobs(&self) -> PerJob<Job> {
        crate::runner::build::build(&self.program, &self.plan).unwrap()
    }

    fn shared(&self, supervisor: Supervisor) -> Arc<Shared> {
        let project_dir = self.dir.path().join("runs").join("t");
        std::fs::create_dir_all(&project_dir).unwrap();
        Arc::new(Shared {
            program: Arc::clone(&self.program),
            workflow: "t".into(),
            apply_id: "apply-test".into(),
            apply_start: jiff::Timestamp::UNIX_EPOCH,
            continued: false,
            project: "t".into(),
            file: None,
            project_dir,
            runs_root: self.dir.path().join("runs"),
            base_env: Vec::new(),
            secrets: Vec::new(),
            redactor: crate::secrets::Redactor::new(std::iter::empty(), &[]),
            agent_path: String::new(),
            supervisor,
            limits: Arc::new(WorkflowLimits::new(None, None)),
            versions: Arc::default(),
            success: Arc::new(Vec::new()),
            notifier: None,
            stop_requests: false,
        })
    }
}

/// What the scripted units did.
#[derive(Debug, Default)]
struct Log {
    started: Vec<String>,
    running: usize,
    most: usize,
    /// By node id: running now, and the most at once.
    per_node: HashMap<String, (usize, usize)>,
}

/// A launcher whose units end with scripted outcomes.
#[derive(Default)]
struct Scripted {
    log: Arc<Mutex<Log>>,
    /// Outcomes by instance key; done (`exit_zero`) otherwise.
    outcomes: HashMap<String, Outcome>,
    /// Units that wait for their notify (or to be cancelled) before ending.
    held: HashMap<String, Arc<Notify>>,
    /// Told each key as its unit starts.
    starts: Option<mpsc::UnboundedSender<String>>,
}

fn done() -> Outcome {
    Outcome::ended(Status::Done, StopReason::Met(Condition::ExitZero))
}

fn failed() -> Outcome {
    Outcome::ended(Status::Failed, StopReason::MaxIterations)
}

impl Launcher for Scripted {
    fn unit(&self, start: UnitStart) -> UnitFuture {
        let key = start.job.key.to_string();
        let node = start.shared.program.node(start.job.node).id.clone();
        let outcome = self.outcomes.get(&key).cloned().unwrap_or_else(done);
        let held = self.held.get(&key).cloned();
        let log = Arc::clone(&self.log);
        if let Some(tx) = &self.starts {
            tx.send(key.clone()).unwrap();
        }
        {
            let mut l = log.lock().unwrap();
            l.started.push(key);
            l.running += 1;
            l.most = l.most.max(l.running);
            let n = l.per_node.entry(node.clone()).or_default();
            n.0 += 1;
            n.1 = n.1.max(n.0);
        }
        let cancel = start.launch.cancel.clone();
        Box::pin(async move {
            let outcome = match held {
                Some(notify) => tokio::select! {
                    () = notify.notified() => outcome,
                    () = cancel.cancelled() => Outcome::ended(Status::Failed, StopReason::Invalidated),
                },
                None => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    outcome
                }
            };
            let mut l = log.lock().unwrap();
            l.running -= 1;
            l.per_node.get_mut(&node).unwrap().0 -= 1;
            outcome
        })
    }

    fn group(&self, _: GroupCheck) -> UnitFuture {
        Box::pin(async { Outcome::ended(Status::Done, StopReason::SuccessCommands) })
    }

    fn merge(&self, _: crate::runner::launcher::MergeStart) -> UnitFuture {
        Box::pin(async { Outcome::ended(Status::Done, StopReason::Merged) })
    }
}

/// Every event, in order.
#[derive(Default)]
struct Events(Vec<Event>);

impl Observer for Events {
    fn event(&mut self, event: &Event) {
        self.0.push(event.clone());
    }
}

impl Events {
    /// `(status, stop reason)` of each instance that finished, by key.
    fn ends(&self) -> HashMap<String, (Status, String)> {
        self.0
            .iter()
            .filter_map(|e| match e {
                Event::InstanceFinished { key, outcome } => Some((
                    key.to_string(),
                    (outcome.status, outcome.stop_reason.to_string()),
                )),
                _ => None,
            })
            .collect()
    }

    fn end(&self, key: &str) -> (Status, String) {
        self.ends()
            .remove(key)
            .unwrap_or_else(|| panic!("{key} never finished: {:#?}", self.0))
    }
}

/// Plays the user's part beside the dispatcher (edits, Ctrl-C), given the
/// session's supervisor. It records what it saw rather than asserting: a
/// panic in a local task would not fail the test.
type Driver =
    Box<dyn FnOnce(Supervisor) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>;

/// Runs `flow`'s jobs to their end with `launcher`; the events, the stop
/// reason and the stop level it ended at.
fn run(
    flow: &Flow,
    jobs: PerJob<Job>,
    launcher: &Scripted,
    limits: Limits,
    control: Option<&mut mpsc::UnboundedReceiver<Control>>,
    driver: Option<Driver>,
) -> (Events, Option<StopReason>, StopLevel) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let supervisor = Supervisor::new(None, Duration::from_millis(10));
    let mut events = Events::default();
    runtime.block_on(async {
        let local = tokio::task::LocalSet::new();
        if let Some(d) = driver {
            local.spawn_local(d(supervisor.clone()));
        }
        let dispatch = Dispatcher::new(Setup {
            shared: flow.shared(supervisor.clone()),
            jobs,
            limits,
            observer: &mut events,
            launcher,
            prior: crate::incremental::prior::Prior::default(),
            control,
        })
        .run();
        // Time is paused: an apply that hangs (a held unit never let go)
        // reaches this at once instead of hanging the test.
        tokio::time::timeout(Duration::from_hours(1), local.run_until(dispatch))
            .await
            .expect("the dispatcher ends")
    });
    let level = supervisor.stop_level();
    // Why it stopped, as the user is told first.
    let stop = events.0.iter().find_map(|e| match e {
        Event::Stopping { reason } => Some(reason.clone()),
        _ => None,
    });
    (events, stop, level)
}

fn limits(max_parallel: usize) -> Limits {
    Limits {
        max_parallel,
        fail_fast: false,
    }
}

#[test]
fn no_more_units_run_at_once_than_max_parallel_allows() {
    let flow =
        Flow::new("[nodes.n]\nfor_each = [\"a\", \"b\", \"c\", \"d\", \"e\"]\nprompt = \"x\"\n");
    let launcher = Scripted::default();
    let (events, stop, _) = run(&flow, flow.jobs(), &launcher, limits(2), None, None);
    let log = launcher.log.lock().unwrap();
    assert_eq!(log.most, 2, "{log:?}");
    assert_eq!(log.started.len(), 5);
    assert_eq!(stop, None);
    for k in ["n[a]", "n[b]", "n[c]", "n[d]", "n[e]"] {
        assert_eq!(events.end(k).0, Status::Done);
    }
}

#[test]
fn a_nodes_max_parallel_holds_its_instances_but_not_the_others() {
    let flow = Flow::new(
        "[nodes.slow]\nfor_each = [\"a\", \"b\", \"c\"]\nmax_parallel = 1\nprompt = \"x\"\n[nodes.other]\nfor_each = [\"a\", \"b\"]\nprompt = \"x\"\n",
    );
    let launcher = Scripted::default();
    let (events, _, _) = run(&flow, flow.jobs(), &launcher, limits(4), None, None);
    let log = launcher.log.lock().unwrap();
    assert_eq!(
        log.per_node["slow"].1, 1,
        "slow ran more than one at once: {log:?}"
    );
    assert_eq!(log.per_node["other"].1, 2, "{log:?}");
    assert!(
        log.most >= 3,
        "the other node ran beside the held one: {log:?}"
    );
    assert_eq!(events.ends().len(), 5);
}

#[test]
fn a_failed_node_skips_its_dependents_down_the_chain_and_not_the_other_branch() {
    let flow = Flow::new(
        "[nodes.a]\nprompt = \"x\"\n[nodes.b]\nneeds = [\"a\"]\nprompt = \"x\"\n[nodes.c]\nneeds = [\"b\"]\nprompt = \"x\"\n[nodes.d]\nprompt = \"x\"\n",
    );
    let launcher = Scripted {
        outcomes: HashMap::from([("a".to_string(), failed())]),
        ..Scripted::default()
    };
    let (events, _, _) = run(&flow, flow.jobs(), &launcher, limits(4), None, None);
    assert_eq!(events.end("a"), (Status::Failed, "max_iterations".into()));
    assert_eq!(
        events.end("b"),
        (Status::Skipped, "needs `a`, which did not finish".into())
    );
    assert_eq!(
        events.end("c"),
        (Status::Skipped, "needs `b`, which did not finish".into())
    );
    assert_eq!(events.end("d").0, Status::Done);
    let started = &launcher.log.lock().unwrap().started;
    assert!(!started.iter().any(|k| k == "b" || k == "c"), "{started:?}");
}

#[test]
fn a_gate_is_evaluated_over_a_failed_need() {
    let flow = Flow::new(
        "[nodes.a]\nprompt = \"x\"\n[nodes.check]\nneeds = [\"a\"]\ngate = \"needs.a.status == 'failed'\"\n[nodes.after]\nneeds = [\"check\"]\nprompt = \"x\"\n",
    );
    let launcher = Scripted {
        outcomes: HashMap::from([("a".to_string(), failed())]),
        ..Scripted::default()
    };
    let (events, _, _) = run(&flow, flow.jobs(), &launcher, limits(4), None, None);
    assert_eq!(events.end("check"), (Status::Done, "gate_true".into()));
    assert_eq!(events.end("after").0, Status::Done);
}

#[test]
fn fail_fast_stops_the_apply_and_skips_what_did_not_start() {
    let flow = Flow::new(
        "[nodes.a]\nprompt = \"x\"\n[nodes.b]\nneeds = [\"a\"]\nprompt = \"x\"\n[nodes.c]\nfor_each = [\"1\", \"2\", \"3\"]\nmax_parallel = 1\nprompt = \"x\"\n",
    );
    let launcher = Scripted {
        outcomes: HashMap::from([("a".to_string(), failed())]),
        ..Scripted::default()
    };
    let limits = Limits {
        max_parallel: 2,
        fail_fast: true,
    };
    let (events, stop, level) = run(&flow, flow.jobs(), &launcher, limits, None, None);
    assert_eq!(stop, Some(StopReason::FailFast));
    assert_eq!(
        level,
        StopLevel::Graceful,
        "running agents are told to stop"
    );
    assert!(events.0.iter().any(|e| matches!(
        e,
        Event::Stopping {
            reason: StopReason::FailFast
        }
    )));
    assert_eq!(events.end("b").0, Status::Skipped);
    // c's instances waiting for their node's slot are skipped, not started.
    let skipped: Vec<_> = ["c[1]", "c[2]", "c[3]"]
        .into_iter()
        .filter(|k| events.end(k) == (Status::Skipped, "fail_fast".into()))
        .collect();
    assert!(!skipped.is_empty(), "{:#?}", events.ends());
    let started = launcher.log.lock().unwrap().started.clone();
    for k in skipped {
        assert!(!started.iter().any(|s| s == k), "{k} started: {started:?}");
    }
}

#[test]
fn ctrl_c_while_fail_fast_stops_is_still_told_once() {
    let flow = Flow::new("[nodes.a]\nprompt = \"x\"\n[nodes.b]\nprompt = \"x\"\n");
    let b = Arc::new(Notify::new());
    let launcher = Scripted {
        outcomes: HashMap::from([("a".to_string(), failed())]),
        held: HashMap::from([("b".to_string(), Arc::clone(&b))]),
        ..Scripted::default()
    };
    let limits = Limits {
        max_parallel: 2,
        fail_fast: true,
    };
    let driver: Driver = Box::new(move |supervisor| {
        Box::pin(async move {
            // a failed: the apply stops, b still runs; then Ctrl-C twice.
            supervisor.reached(StopLevel::Graceful).await;
            for _ in 0..2 {
                supervisor.signalled(2);
                // Paused time: this returns once the dispatcher is idle.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            b.notify_one();
        })
    });
    let (events, stop, level) = run(&flow, flow.jobs(), &launcher, limits, None, Some(driver));
    assert_eq!(stop, Some(StopReason::FailFast));
    assert_eq!(level, StopLevel::Now);
    let told: Vec<_> = events
        .0
        .iter()
        .filter_map(|e| match e {
            Event::Stopping { reason } => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(told, [StopReason::FailFast, StopReason::Interrupted]);
}

#[test]
fn a_run_time_fan_out_becomes_one_instance_per_item_of_its_source() {
    let flow = Flow::new(
        "[nodes.plan]\nprompt = \"x\"\noutput = { format = \"json\" }\n[nodes.work]\nfor_each = { from = \"plan\", path = \"json.tasks\" }\nprompt = \"{{ item }}\"\n[nodes.report]\nneeds = [\"work\"]\nprompt = \"x\"\n",
    );
    let mut planned = done();
    planned.json = Some(serde_json::json!({"tasks": ["x", "y", "z"]}));
    let launcher = Scripted {
        outcomes: HashMap::from([("plan".to_string(), planned)]),
        ..Scripted::default()
    };
    let (events, _, _) = run(&flow, flow.jobs(), &launcher, limits(4), None, None);
    let expanded = events.0.iter().find_map(|e| match e {
        Event::Expanded { key, instances } => Some((key.to_string(), instances.clone())),
        _ => None,
    });
    let (key, instances) = expanded.expect("an Expanded event");
    assert_eq!(key, "work[*]");
    let instances: Vec<&str> = instances.iter().map(|k| &**k).collect();
    assert_eq!(instances, ["work[x]", "work[y]", "work[z]"]);
    for k in instances {
        assert_eq!(events.end(k).0, Status::Done);
    }
    // The report runs after every instance, not after the placeholder.
    let started = launcher.log.lock().unwrap().started.clone();
    assert_eq!(
        started.last().map(String::as_str),
        Some("report"),
        "{started:?}"
    );
}

#[test]
fn a_re_plan_keeps_a_running_unit_it_did_not_change_and_restarts_one_it_did() {
    let flow = Flow::new("[nodes.kept]\nprompt = \"x\"\n[nodes.changed]\nprompt = \"x\"\n");
    let (kept, changed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (starts_tx, mut starts) = mpsc::unbounded_channel();
    let launcher = Scripted {
        held: HashMap::from([
            ("kept".to_string(), Arc::clone(&kept)),
            ("changed".to_string(), Arc::clone(&changed)),
        ]),
        starts: Some(starts_tx),
        ..Scripted::default()
    };
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    let mut replanned = flow.jobs();
    for (_, job) in replanned.iter_mut() {
        if &*job.key == "changed" {
            let mut fp = (*job.fingerprint).clone();
            fp.parts.insert("prompt".into(), "edited".into());
            job.fingerprint = Arc::new(fp);
        }
    }
    let program = Arc::clone(&flow.program);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let saw = Arc::clone(&seen);
    let driver: Driver = Box::new(move |_| {
        Box::pin(async move {
            // Both run; then the workflow is edited.
            for _ in 0..2 {
                let started = starts.recv().await;
                saw.lock().unwrap().extend(started);
            }
            saw.lock().unwrap().sort();
            let _ = control_tx.send(Control::Replan {
                jobs: replanned,
                program,
                success: Arc::new(Vec::new()),
                why: "flow.toml changed".into(),
            });
            // The changed one starts again under the new plan; then both end.
            let started = starts.recv().await;
            saw.lock().unwrap().extend(started);
            kept.notify_one();
            changed.notify_one();
        })
    });
    let (events, _, _) = run(
        &flow,
        flow.jobs(),
        &launcher,
        limits(4),
        Some(&mut control_rx),
        Some(driver),
    );
    assert_eq!(*seen.lock().unwrap(), ["changed", "kept", "changed"]);
    let replans: Vec<_> = events
        .0
        .iter()
        .filter_map(|e| match e {
            Event::Replanned { restarted, .. } => Some(restarted.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(replans.len(), 1, "{:#?}", events.0);
    let restarted: Vec<&str> = replans[0].iter().map(|k| &**k).collect();
    assert_eq!(restarted, ["changed"]);
    let started = launcher.log.lock().unwrap().started.clone();
    assert_eq!(
        started.iter().filter(|k| *k == "kept").count(),
        1,
        "the kept unit ran once: {started:?}"
    );
    assert_eq!(started.iter().filter(|k| *k == "changed").count(), 2);
    assert_eq!(events.end("kept").0, Status::Done);
    assert_eq!(events.end("changed").0, Status::Done);
}

#[test]
fn a_chain_of_a_hundred_thousand_jobs_whose_head_fails_is_skipped_without_recursion() {
    // Built directly: compiling 100,000 nodes is the front end's test, and
    // a deep recursion would overflow this test thread's stack.
    let flow = Flow::new(
        "[nodes.head]\nprompt = \"x\"\n[nodes.next]\nneeds = [\"head\"]\nprompt = \"x\"\n",
    );
    let built = flow.jobs();
    let template = built.values().nth(1).unwrap().clone();
    let mut jobs: PerJob<Job> = built.into_values().take(1).collect();
    let n = 100_000;
    for i in 1..n {
        let prev = crate::runner::job::JobId::new(i - 1);
        jobs.push(Job {
            key: format!("next{i}").into(),
            needs: vec![prev],
            ..template.clone()
        });
    }
    let launcher = Scripted {
        outcomes: HashMap::from([("head".to_string(), failed())]),
        ..Scripted::default()
    };
    let (events, _, _) = run(&flow, jobs, &launcher, limits(4), None, None);
    let ends = events.ends();
    assert_eq!(ends.len(), n);
    assert_eq!(
        ends.values().filter(|(s, _)| *s == Status::Skipped).count(),
        n - 1
    );
    assert_eq!(
        ends[&format!("next{}", n - 1)],
        (
            Status::Skipped,
            format!("needs `next{}`, which did not finish", n - 2)
        )
    );
}
