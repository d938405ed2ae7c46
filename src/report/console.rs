//! The console reporter: on a TTY a header of counts and money
//! (`super::tally`) over one live line per running instance (iteration,
//! its cost, elapsed time, and the latest tool call or message its agent
//! posted to the bus), lines cut to the terminal's width; otherwise plain
//! timestamped lines, the header among them every ten seconds; a summary
//! table at the end (docs/console.md).
//! Everything goes to stderr: stdout is for machine output.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::runner::Observer;
use crate::runner::event::Event;
use crate::runner::outcome::Status;
use crate::runner::summary::Summary;
use crate::stop_reason::StopReason;
use crate::store::layout::{ProjectDir, RunDir, TaskDir};

/// A running instance's line.
#[derive(Debug)]
struct Live {
    bar: ProgressBar,
    bus: PathBuf,
    /// `n[a] iteration 2/5 (claude) · $0.12`: the key, then what it does.
    head: String,
    /// The current run, its agent's kind and when it started: its tool
    /// calls, silence and retries.
    run: Option<(RunDir, crate::model::AgentKind, std::time::SystemTime)>,
}

type Lines = Arc<Mutex<HashMap<Arc<str>, Live>>>;

/// How often plain output repeats the header.
const PLAIN_HEADER_EVERY: Duration = Duration::from_secs(10);

/// Prints an apply as it happens.
#[derive(Debug)]
pub(crate) struct Console {
    bars: Option<MultiProgress>,
    /// The header line, on a TTY; its counts.
    header: Option<ProgressBar>,
    tally: Arc<Mutex<super::tally::Tally>>,
    /// When plain output last printed the header.
    header_printed: std::time::Instant,
    running: Lines,
    project_dir: PathBuf,
    /// Dropped to stop the ticker at once.
    done: Option<std::sync::mpsc::Sender<()>>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Console {
    /// Live lines when stderr is a terminal, plain lines otherwise.
    pub(crate) fn new(tty: bool) -> Self {
        let running: Lines = Arc::default();
        let tally: Arc<Mutex<super::tally::Tally>> = Arc::default();
        let bars = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let header = bars.as_ref().map(|m| {
            let style = ProgressStyle::with_template("{wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            m.add(ProgressBar::new_spinner().with_style(style))
        });
        let (done, stop) = std::sync::mpsc::channel();
        let ticker = tty.then(|| {
            let running = Arc::clone(&running);
            let tally = Arc::clone(&tally);
            let header = header.clone();
            std::thread::spawn(move || tick(&running, &tally, header.as_ref(), &stop))
        });
        Self {
            bars,
            header,
            tally,
            header_printed: std::time::Instant::now(),
            running,
            project_dir: PathBuf::new(),
            done: Some(done),
            ticker,
        }
    }

    fn line(&self, text: &str) {
        let text = &*super::printable(text);
        match &self.bars {
            Some(m) => {
                let _ = m.println(text);
            }
            None => {
                let now = crate::clock::now().strftime("%H:%M:%SZ");
                let _ = writeln!(std::io::stderr(), "{now} {text}");
            }
        }
    }

    fn start(&self, key: &Arc<str>, task_id: &str) {
        let Some(m) = &self.bars else { return };
        // The key is part of the message, so that the whole line is cut to
        // the terminal's width, never wrapped.
        let style = ProgressStyle::with_template("{spinner} {wide_msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = m.add(ProgressBar::new_spinner().with_style(style));
        bar.set_message(format!("{} starting", super::printable(key)));
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut r) = self.running.lock() {
            r.insert(
                Arc::clone(key),
                Live {
                    bar,
                    bus: ProjectDir::at(self.project_dir.clone()).task(task_id).bus(),
                    head: String::new(),
                    run: None,
                },
            );
        }
    }

    /// The table printed after the apply.
    pub(crate) fn finish(&mut self, summary: &Summary) {
        self.close();
        let mut err = std::io::stderr().lock();
        let width = summary
            .instances
            .iter()
            .map(|i| i.key.chars().count())
            .max()
            .unwrap_or(4)
            .max(8);
        let _ = writeln!(err);
        let _ = writeln!(
            err,
            "{:<width$}  {:<8}  {:>5}  {:>8}  stop reason",
            "instance", "status", "iter", "time"
        );
        for i in &summary.instances {
            let _ = writeln!(
                err,
                "{:<width$}  {:<8}  {:>5}  {:>8}  {}",
                super::printable(&i.key),
                if i.stop_reason == StopReason::UpToDate {
                    "current"
                } else {
                    i.status.as_str()
                },
                i.iterations,
                super::human::format_ms(i.duration_ms),
                if i.tolerated {
                    format!("{} (tolerated)", i.stop_reason)
                } else {
                    i.stop_reason.to_string()
                }
            );
        }
        let isolated: Vec<_> = summary
            .instances
            .iter()
            .filter_map(|i| Some((i, i.worktree.as_ref()?)))
            .collect();
        if !isolated.is_empty() {
            let branch_width = isolated
                .iter()
                .map(|(_, w)| w.branch.len())
                .max()
                .unwrap_or(6);
            let _ = writeln!(
                err,
                "{:<width$}  {:<branch_width$}  changed",
                "instance", "branch"
            );
            for (i, w) in isolated {
                let _ = writeln!(
                    err,
                    "{:<width$}  {:<branch_width$}  {}",
                    super::printable(&i.key),
                    super::printable(&w.branch),
                    w.stat()
                );
            }
        }
        for s in &summary.success {
            let mark = if s.exit_code == 0 { "passed" } else { "FAILED" };
            let _ = writeln!(
                err,
                "[success] {mark}: {} (exit {})",
                super::printable(&s.command),
                s.exit_code
            );
        }
        let _ = writeln!(err, "{}", super::printable(&summary_line(summary)));
    }

    /// Ends the live view: the ticker stops, and the header and live lines
    /// are cleared, so that nothing frozen is left on the terminal.
    pub(crate) fn close(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Ok(mut r) = self.running.lock() {
            for (_, live) in r.drain() {
                live.bar.finish_and_clear();
            }
        }
        if let Some(h) = &self.header {
            h.finish_and_clear();
        }
    }

    /// A line of conductor's own between applies (a watch waiting): printed
    /// above the live view, never through it.
    pub(crate) fn note(&self, text: &str) {
        self.line(text);
    }

    /// One line for an apply that a watch ran (the live view goes on).
    pub(crate) fn brief(&self, summary: &Summary) {
        let text = summary_line(summary);
        self.line(text.lines().next().unwrap_or_default());
    }
}

/// `wf: done in 1.2s (3 done, 1 up to date, ..)` and where the runs are.
fn summary_line(summary: &Summary) -> String {
    let cost = if summary.usage.cost_usd > 0.0 {
        format!(", ${:.4}", summary.usage.cost_usd)
    } else {
        String::new()
    };
    let current = if summary.counts.up_to_date > 0 {
        format!(", {} up to date", summary.counts.up_to_date)
    } else {
        String::new()
    };
    format!(
        "{}: {} in {} ({} done{current}, {} failed, {} skipped{cost})\nruns: {}",
        summary.workflow,
        summary.status,
        super::human::format_ms(summary.duration_ms),
        summary.counts.done,
        summary.counts.failed,
        summary.counts.skipped,
        std::path::Path::new(&summary.root)
            .join(&summary.project)
            .display()
    )
}

/// Refreshes each live line with the latest message an agent posted,
/// reading only the end of its task bus.
fn tick(
    running: &Lines,
    tally: &Mutex<super::tally::Tally>,
    header: Option<&ProgressBar>,
    stop: &std::sync::mpsc::Receiver<()>,
) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        stop.recv_timeout(Duration::from_millis(500))
    {
        if let (Some(h), Ok(t)) = (header, tally.lock()) {
            h.set_message(t.header());
        }
        let Ok(r) = running.lock() else { return };
        for live in r.values() {
            let latest = crate::bus::tail(&live.bus, 4)
                .ok()
                .and_then(|msgs| msgs.into_iter().rev().find(|m| !m.kind.starts_with("RUN_")))
                .map(|m| {
                    let first = m.body.lines().next().unwrap_or_default();
                    let cut: String = first.chars().take(60).collect();
                    format!(" · {}: {cut}", m.kind)
                })
                .unwrap_or_default();
            let tool = live
                .run
                .as_ref()
                .and_then(|(run, kind, _)| crate::agents::activity::latest(*kind, &run.stdout()))
                .map(|t| format!(" · {t}"))
                .unwrap_or_default();
            let note = live
                .run
                .as_ref()
                .map(|(run, kind, started)| super::liveness::note(run, *kind, *started))
                .unwrap_or_default();
            live.bar.set_message(
                super::printable(&format!("{}{note}{tool}{latest}", live.head)).into_owned(),
            );
        }
    }
}

impl Console {
    /// The header, after `event` is counted: redrawn on a TTY, printed now
    /// and then otherwise.
    fn count(&mut self, event: &Event) {
        let Ok(mut t) = self.tally.lock() else { return };
        t.event(event);
        match &self.header {
            Some(h) => h.set_message(t.header()),
            None if matches!(event, Event::InstanceFinished { .. })
                && self.header_printed.elapsed() >= PLAIN_HEADER_EVERY =>
            {
                let text = t.header();
                drop(t);
                self.header_printed = std::time::Instant::now();
                self.line(&text);
            }
            None => {}
        }
    }

    /// What `key` has cost so far, as ` · $0.12`.
    fn cost_of(&self, key: &str) -> String {
        self.tally
            .lock()
            .ok()
            .and_then(|t| t.cost_of(key))
            .map(|c| format!(" · {}", super::human::money(c)))
            .unwrap_or_default()
    }
}

impl Observer for Console {
    fn event(&mut self, event: &Event) {
        self.count(event);
        match event {
            Event::WorkflowStarted {
                workflow,
                instances,
                fan_outs,
                apply_id,
                project_dir,
                ..
            } => {
                self.project_dir.clone_from(project_dir);
                // A run-time fan-out is one instance until its items are known.
                let later = match fan_outs {
                    0 => String::new(),
                    1 => ", one of them a run-time fan-out that becomes its items".to_string(),
                    n => format!(", {n} of them run-time fan-outs that become their items"),
                };
                self.line(&format!(
                    "{workflow}: applying {instances} instance(s){later} ({apply_id})"
                ));
            }
            Event::InstanceStarted { key, task_id } => self.start(key, task_id),
            Event::Expanded { key, instances } => {
                self.line(&format!("{key}: {} instance(s)", instances.len()));
            }
            Event::IterationStarted {
                key,
                iteration,
                max_iterations,
                agent,
                run_id,
                kind,
            } => {
                let text = format!(
                    "{key} iteration {iteration}/{max_iterations} ({agent}){}",
                    self.cost_of(key)
                );
                if self.bars.is_none() {
                    self.line(&format!(
                        "{key}: iteration {iteration}/{max_iterations} ({agent})"
                    ));
                } else if let Ok(mut r) = self.running.lock()
                    && let Some(live) = r.get_mut(key)
                {
                    live.bar.set_message(super::printable(&text).into_owned());
                    live.head = text;
                    live.run = live.bus.parent().map(|task| {
                        (
                            TaskDir::at(task.to_path_buf()).run(run_id),
                            *kind,
                            std::time::SystemTime::now(),
                        )
                    });
                }
            }
            Event::IterationFinished {
                key,
                iteration,
                exit_code,
                verdict,
                duration,
                ..
            } => {
                let why = verdict.why();
                if self.bars.is_none() {
                    let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
                    self.line(&format!(
                        "{key}: iteration {iteration} exited {exit_code} after {}: {verdict}{why}",
                        super::human::format_ms(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
                    ));
                } else if let Some(why) = why {
                    // The live line moves on to the next iteration; what
                    // this one lacked stays above it.
                    self.line(&format!("{key}: iteration {iteration} not done: {why}"));
                }
            }
            Event::InstanceFinished { key, outcome } => {
                if let Ok(mut r) = self.running.lock()
                    && let Some(live) = r.remove(key)
                {
                    live.bar.finish_and_clear();
                }
                if outcome.stop_reason == StopReason::UpToDate {
                    // The summary lists them; a line each would bury what ran.
                    return;
                }
                let mark = match outcome.status {
                    Status::Done => "done",
                    Status::Failed => "FAILED",
                    Status::Skipped => "skipped",
                };
                let mut text = format!("{key}: {mark} ({})", outcome.stop_reason);
                if let Some(e) = &outcome.error {
                    text.push_str(": ");
                    text.push_str(e);
                }
                // Where to look next, for one whose agent ran.
                if outcome.status == Status::Failed && outcome.run_id.is_some() {
                    let _ = write!(
                        text,
                        "\n  its output: conductor logs {} (and --stderr)",
                        crate::prompt::shell_word(key)
                    );
                }
                self.line(&text);
            }
            Event::GroupRestarted {
                key,
                round,
                max_rounds,
                why,
            } => self.line(&format!("{key}: round {round}/{max_rounds} ({why})")),
            Event::Triggered { why, will_run } => {
                if will_run.is_empty() {
                    self.line(&format!("{why}: everything is up to date"));
                } else {
                    let keys: Vec<&str> = will_run.iter().map(|k| &**k).collect();
                    self.line(&format!("{why}: running {}", keys.join(", ")));
                }
            }
            Event::Replanned {
                why,
                restarted,
                will_run,
            } => {
                let list =
                    |keys: &[Arc<str>]| keys.iter().map(|k| &**k).collect::<Vec<_>>().join(", ");
                let text = match (restarted.is_empty(), will_run.is_empty()) {
                    (true, true) => format!("{why}: nothing to re-run"),
                    (false, true) => format!("{why}: restarting {}", list(restarted)),
                    (true, false) => format!("{why}: running {}", list(will_run)),
                    (false, false) => format!(
                        "{why}: restarting {}; running {}",
                        list(restarted),
                        list(will_run)
                    ),
                };
                self.line(&text);
            }
            Event::SuccessChecked {
                command,
                exit_code,
                error,
                tail,
            } => match error {
                Some(e) => self.line(&format!("[success] {command}: {e}")),
                // A failed command's last lines, folded under it.
                None if *exit_code != 0 && !tail.is_empty() => {
                    let folded: Vec<String> = tail.lines().map(|l| format!("  │ {l}")).collect();
                    self.line(&format!(
                        "[success] {command}: exit {exit_code}, its last lines:\n{}",
                        folded.join("\n")
                    ));
                }
                None => self.line(&format!("[success] {command}: exit {exit_code}")),
            },
            // Counted into the header only.
            Event::Queued { .. } => {}
            Event::AskingVersions { programs } => self.line(&format!(
                "asking {} for {} version (once per binary; the answer is kept)",
                programs.join(", "),
                if programs.len() == 1 { "its" } else { "their" }
            )),
            Event::NoLongerTolerated { key } => self.line(&format!(
                "{key}: its earlier failure is no longer tolerated; the next apply runs it again"
            )),
            Event::Landed {
                key,
                instance,
                target,
                result,
                ..
            } => self.line(&match result {
                Ok(how) => format!("{key}: {instance} {how} into {target}"),
                Err(why) => format!("{key}: {instance} not merged into {target}: {why}"),
            }),
            Event::OutsideWrites { key, files } => {
                let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
                let more = files.len().saturating_sub(shown.len());
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                self.line(&format!(
                    "{key}: changed files outside its declared writes: {}{more}",
                    shown.join(", ")
                ));
            }
            Event::WaitingForWrites { key, other, globs } => self.line(&format!(
                "{key}: waits for {other} to end: their declared writes overlap ({} and {})",
                globs.0, globs.1
            )),
            Event::Overlapped { instances, files } => {
                let names: Vec<&str> = instances.iter().map(|k| &**k).collect();
                let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
                let more = files.len().saturating_sub(shown.len());
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                self.line(&format!(
                    "overlap: {} ran side by side and changed the same files: {}{more}; see docs/isolation.md, \"Overlaps\"",
                    names.join(", "),
                    shown.join(", ")
                ));
            }
            Event::InputsChanged { key, files } => {
                let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
                let more = files.len().saturating_sub(shown.len());
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                self.line(&format!(
                    "{key}: will run again on the next apply: this apply changed its inputs ({}{more}); see docs/watch.md, \"An apply that changes its own inputs\"",
                    shown.join(", ")
                ));
            }
            Event::Tolerated { key, gates } => {
                let gates: Vec<&str> = gates.iter().map(|g| &**g).collect();
                self.line(&format!(
                    "{key}: its failure is tolerated: {} passed over it",
                    gates.join(", ")
                ));
            }
            Event::Stopping { reason } => {
                let how = if *reason == StopReason::Interrupted {
                    " (what runs gets SIGTERM; press Ctrl-C again to kill it now)"
                } else {
                    ""
                };
                self.line(&format!("stopping: {reason}{how}"));
            }
            Event::StaleFinalised { applies, runs } => self.line(&format!(
                "finalised {applies} earlier apply(s) whose conductor had died ({runs} run(s) left running)"
            )),
        }
    }
}
