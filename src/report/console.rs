//! The console reporter: on a TTY one progress line per running instance
//! (iteration, elapsed time, what it last did), otherwise plain
//! timestamped lines; a summary table at the end. Everything goes to
//! stderr: stdout is for machine output.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::runner::Observer;
use crate::runner::event::Event;
use crate::runner::outcome::Status;
use crate::runner::summary::Summary;

/// Prints an apply as it happens.
#[derive(Debug)]
pub struct Console {
    bars: Option<MultiProgress>,
    running: HashMap<Arc<str>, ProgressBar>,
}

impl Console {
    /// Progress bars when stderr is a terminal, plain lines otherwise.
    pub fn new(tty: bool) -> Self {
        Self {
            bars: tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            running: HashMap::new(),
        }
    }

    fn line(&self, text: &str) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(text);
            }
            None => {
                let now = jiff::Timestamp::now().strftime("%H:%M:%SZ");
                let _ = writeln!(std::io::stderr(), "{now} {text}");
            }
        }
    }

    fn bar(&mut self, key: &Arc<str>) -> Option<&ProgressBar> {
        let m = self.bars.as_ref()?;
        Some(self.running.entry(Arc::clone(key)).or_insert_with(|| {
            let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bar = m.add(ProgressBar::new_spinner().with_style(style));
            bar.set_prefix(key.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }))
    }

    /// The table printed after the apply.
    pub fn finish(&mut self, summary: &Summary) {
        for (_, bar) in self.running.drain() {
            bar.finish_and_clear();
        }
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
                i.key,
                i.status.as_str(),
                i.iterations,
                format_ms(i.duration_ms),
                i.stop_reason
            );
        }
        for s in &summary.success {
            let mark = if s.exit_code == 0 { "passed" } else { "FAILED" };
            let _ = writeln!(
                err,
                "[success] {mark}: {} (exit {})",
                s.command, s.exit_code
            );
        }
        let cost = if summary.usage.cost_usd > 0.0 {
            format!(", ${:.4}", summary.usage.cost_usd)
        } else {
            String::new()
        };
        let _ = writeln!(
            err,
            "{}: {} in {} ({} done, {} failed, {} skipped{cost})\nruns: {}",
            summary.workflow,
            summary.status,
            format_ms(summary.duration_ms),
            summary.counts.done,
            summary.counts.failed,
            summary.counts.skipped,
            std::path::Path::new(&summary.root)
                .join(&summary.project)
                .display()
        );
    }
}

fn format_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        #[expect(clippy::cast_precision_loss, reason = "display only")]
        let s = ms as f64 / 1000.0;
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

impl Observer for Console {
    fn event(&mut self, event: &Event) {
        match event {
            Event::WorkflowStarted {
                workflow,
                instances,
                apply_id,
                ..
            } => self.line(&format!(
                "{workflow}: applying {instances} instance(s) ({apply_id})"
            )),
            Event::InstanceStarted { .. } | Event::Expanded { .. } => {
                if let Event::Expanded { key, instances } = event {
                    self.line(&format!("{key}: {} instance(s)", instances.len()));
                }
            }
            Event::IterationStarted {
                key,
                iteration,
                max_iterations,
                agent,
                ..
            } => {
                let text = format!("iteration {iteration}/{max_iterations} ({agent})");
                match self.bar(key) {
                    Some(bar) => bar.set_message(text),
                    None => self.line(&format!("{key}: {text}")),
                }
            }
            Event::IterationFinished {
                key,
                iteration,
                exit_code,
                verdict,
                duration,
            } => {
                let text = format!(
                    "{key}: iteration {iteration} exited {exit_code} after {}: {verdict}",
                    format_ms(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
                );
                if self.bars.is_none() {
                    self.line(&text);
                }
            }
            Event::InstanceFinished { key, outcome } => {
                if let Some(bar) = self.running.remove(key) {
                    bar.finish_and_clear();
                }
                let mark = match outcome.status {
                    Status::Done => "done",
                    Status::Failed => "FAILED",
                    Status::Skipped => "skipped",
                };
                let mut text = format!("{key}: {mark} ({})", outcome.stop_reason);
                if outcome.status == Status::Failed
                    && outcome.iterations == 0
                    && !outcome.output.is_empty()
                {
                    text.push_str(": ");
                    text.push_str(&outcome.output);
                }
                self.line(&text);
            }
            Event::SuccessChecked { command, exit_code } => {
                self.line(&format!("[success] {command}: exit {exit_code}"));
            }
            Event::Stopping { reason } => self.line(&format!("stopping: {reason}")),
        }
    }
}
