//! Owns the records one run leaves besides its files: its task-bus posts
//! (`RUN_START`, `RUN_STOP`, `RUN_CRASH`, `ERROR`), its terminal run-info.yaml, and
//! the Go seed's error summary, with the stderr tail that explains a crash;
//! and when a loop's records are made durable.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::limits::Cut;
use super::ran::Ran;
use crate::agents::usage::Usage;
use crate::bus::{BusWriter, NewMessage};
use crate::runner::context::Shared;
use crate::stop_reason::StopReason;
use crate::store::RunInfo;

/// Appends to a task bus; a bus failure is logged, never fatal to the loop.
/// The bus is opened for each record rather than held open: every open
/// descriptor of conductor's is one more that each new agent's exec must
/// close, which made starting many agents quadratic (docs/performance.md).
pub(crate) fn post(
    shared: &Shared,
    bus: &Path,
    kind: &str,
    task_id: &str,
    run_id: &str,
    meta: Vec<(&str, String)>,
    body: &str,
) {
    let msg = NewMessage {
        kind: kind.to_string(),
        project_id: shared.project.clone(),
        task_id: task_id.to_string(),
        run_id: run_id.to_string(),
        parents: Vec::new(),
        meta: meta
            .into_iter()
            .map(|(k, v)| (k.to_string(), shared.redactor.redact(&v).into_owned()))
            .collect(),
        body: shared.redactor.redact(body).into_owned(),
    };
    if let Err(e) = BusWriter::open(bus).and_then(|mut w| w.append(&msg)) {
        tracing::warn!("cannot post {kind} to {}: {e}", bus.display());
    }
}

/// How long a loop's terminal records may wait for the disk.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// When one loop's terminal run records reach the disk (docs/performance.md,
/// "Durability"). Every record is written atomically (a reader sees the old
/// record or the new one); it is also fsynced once a second has passed since
/// the loop last made one durable, and the loop's last record always is,
/// when the loop ends, before its instance is reported. A fast loop so pays
/// one fsync a second instead of one an iteration, which on a real disk
/// cost more than the rest of the iteration's bookkeeping; a loop of real
/// agents, whose iterations take longer than that, still fsyncs every one.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    last: Instant,
    pending: Option<PathBuf>,
}

impl GroupCommit {
    pub(crate) fn new() -> Self {
        Self {
            last: Instant::now(),
            pending: None,
        }
    }

    /// Whether the next record is to be written durably.
    pub(crate) fn due(&self) -> bool {
        self.last.elapsed() >= COMMIT_EVERY
    }

    /// Notes a record written, durably or not; one whose durable write
    /// failed is still to be made durable.
    pub(crate) fn written(&mut self, path: PathBuf, durable: bool) {
        if durable {
            self.last = Instant::now();
            self.pending = None;
        } else {
            self.pending = Some(path);
        }
    }

    /// Makes the last record durable if it is not yet: the loop has ended.
    pub(crate) async fn finish(&mut self) {
        if let Some(path) = self.pending.take()
            && let Some(Err(e)) = off_the_loop(move || RunInfo::sync(&path)).await
        {
            tracing::warn!("{e}");
        }
        self.last = Instant::now();
    }
}

/// Runs `write`, which waits for the disk, on a blocking thread: an fsync
/// on the runtime's one thread held up every other loop and the dispatcher
/// for it, 10,000 of them one after another when 10,000 loops ended at once
/// (docs/performance.md, issue 18), where fsyncs made side by side share
/// the file system's journal commits. `None` when the thread was lost.
async fn off_the_loop<T: Send + 'static>(write: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(write).await {
        Ok(done) => Some(done),
        Err(e) => {
            tracing::warn!("a durable write was lost: {e}");
            None
        }
    }
}

/// The run's terminal record in run-info.yaml, fsynced when `durable`;
/// whether it was written.
pub(crate) async fn finish_record(
    run: &Ran,
    reason: &StopReason,
    error: Option<String>,
    why: Option<String>,
    durable: bool,
) -> bool {
    let path = run.run.info();
    // The run owns its record while it runs, so the copy in memory is the
    // record: no need to read and parse it back.
    let mut info = run.info.clone();
    info.end_time = crate::bus::format_ts(crate::clock::now());
    info.exit_code = i64::from(run.exit_code);
    info.status = if run.exit_code == 0 && !run.reported_failure {
        "completed".into()
    } else {
        "failed".into()
    };
    info.error_summary = error;
    info.stop_reason = Some(reason.to_string());
    info.why = why;
    if run.usage != Usage::default() {
        info.input_tokens = Some(run.usage.input_tokens);
        info.output_tokens = Some(run.usage.output_tokens);
        info.cost_usd = Some(run.usage.cost_usd);
    }
    let write = move || RunInfo::replace(&path, info, durable, |_| {});
    let result = if durable {
        off_the_loop(write).await
    } else {
        Some(write())
    };
    match result {
        Some(Ok(_)) => true,
        Some(Err(e)) => {
            tracing::warn!("{e}");
            false
        }
        None => false,
    }
}

/// The seed's error summary for an exit code.
pub(crate) fn error_summary(run: &Ran) -> Option<String> {
    if let Some(cut) = run.cut {
        return Some(match cut {
            Cut::Interrupted => "stopped by conductor".to_string(),
            Cut::Backend | Cut::Rejected => format!(
                "backend error: {}",
                run.reported_error.as_deref().unwrap_or("the call failed")
            ),
            Cut::Invalidated => "stopped: the watched workflow changed".to_string(),
            Cut::Stopped => "stopped by a person".to_string(),
            other => format!("timed out ({})", other.stop_reason()),
        });
    }
    let summary = match run.exit_code {
        0 if run.reported_failure => "agent reported failure".to_string(),
        0 => return None,
        1 => "agent reported failure".into(),
        2 => "agent usage error".into(),
        137 => "agent killed (OOM or signal)".into(),
        143 => "agent terminated (SIGTERM)".into(),
        n => format!("agent exited with code {n}"),
    };
    // The agent's own words say why (an API error after its retries).
    Some(match &run.reported_error {
        Some(why) => format!("{summary}: {why}"),
        None => summary,
    })
}

/// The last `n` lines of a file, read from its end.
pub(crate) fn tail_lines(path: &Path, n: usize) -> String {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(64 * 1024);
    let mut bytes = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
