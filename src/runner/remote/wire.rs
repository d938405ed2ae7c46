//! Owns `events.jsonl` and `outcome.json`, how a unit that runs elsewhere
//! tells its dispatcher what happens (docs/distributed.md, "The unit"):
//! an iteration started or finished, one JSON line each, appended as it
//! happens; and the unit's outcome, written once, last, by rename. The
//! dispatcher reads what was appended since it last looked and hands it on
//! as the events a local unit sends.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::super::event::Event;
use super::super::outcome::Outcome;
use super::super::verdict::Verdict;
use crate::agents::usage::Usage;
use crate::model::AgentKind;

/// One line of `events.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Line {
    IterationStarted {
        /// The loop's key: the instance's, or a resolving agent's task.
        key: String,
        iteration: u32,
        max_iterations: u32,
        run_id: String,
        agent: String,
        kind: AgentKind,
    },
    IterationFinished {
        key: String,
        iteration: u32,
        exit_code: i32,
        verdict: Verdict,
        duration_ms: u64,
        usage: Usage,
    },
}

impl Line {
    /// The line for a unit's event; `None` for events a unit does not send.
    pub(crate) fn of(event: &Event) -> Option<Self> {
        match event {
            Event::IterationStarted {
                key,
                iteration,
                max_iterations,
                run_id,
                agent,
                kind,
            } => Some(Self::IterationStarted {
                key: key.to_string(),
                iteration: *iteration,
                max_iterations: *max_iterations,
                run_id: run_id.clone(),
                agent: agent.clone(),
                kind: *kind,
            }),
            Event::IterationFinished {
                key,
                iteration,
                exit_code,
                verdict,
                duration,
                usage,
            } => Some(Self::IterationFinished {
                key: key.to_string(),
                iteration: *iteration,
                exit_code: *exit_code,
                verdict: verdict.clone(),
                duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                usage: *usage,
            }),
            _ => None,
        }
    }

    /// The event this line stands for.
    pub(crate) fn into_event(self) -> Event {
        match self {
            Self::IterationStarted {
                key,
                iteration,
                max_iterations,
                run_id,
                agent,
                kind,
            } => Event::IterationStarted {
                key: key.into(),
                iteration,
                max_iterations,
                run_id,
                agent,
                kind,
            },
            Self::IterationFinished {
                key,
                iteration,
                exit_code,
                verdict,
                duration_ms,
                usage,
            } => Event::IterationFinished {
                key: key.into(),
                iteration,
                exit_code,
                verdict,
                duration: Duration::from_millis(duration_ms),
                usage,
            },
        }
    }
}

/// Appends lines to `events.jsonl`, each flushed as it is written: the
/// dispatcher, on another host, reads the file while the unit runs.
#[derive(Debug)]
pub(crate) struct LineWriter(std::fs::File);

impl LineWriter {
    pub(crate) fn create(path: &Path) -> std::io::Result<Self> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Self)
    }

    pub(crate) fn write(&mut self, line: &Line) -> std::io::Result<()> {
        let mut text = serde_json::to_vec(line).map_err(std::io::Error::other)?;
        text.push(b'\n');
        self.0.write_all(&text)?;
        self.0.sync_data()
    }
}

/// Reads what was appended to `events.jsonl` since the last look. A line
/// still being written (no newline yet) is left for the next look.
#[derive(Debug)]
pub(crate) struct LineReader {
    path: PathBuf,
    offset: u64,
}

impl LineReader {
    /// From the start of the file.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, offset: 0 }
    }

    /// The complete lines appended since the last call. The file is opened
    /// afresh each time: on a network file system, that is what shows
    /// another client's writes.
    pub(crate) fn read_new(&mut self) -> Vec<Line> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if file.read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        self.offset += end as u64 + 1;
        bytes[..end]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| match serde_json::from_slice(l) {
                Ok(line) => Some(line),
                Err(e) => {
                    tracing::warn!("{}: a line that is not an event: {e}", self.path.display());
                    None
                }
            })
            .collect()
    }
}

/// Writes the unit's outcome, by rename: a reader sees all of it or none.
pub(crate) fn write_outcome(path: &Path, outcome: &Outcome) -> std::io::Result<()> {
    let text = serde_json::to_vec(outcome).map_err(std::io::Error::other)?;
    crate::store::write_atomic(path, &text)
}

/// The unit's outcome, once it is written.
pub(crate) fn read_outcome(path: &Path) -> Option<Result<Outcome, serde_json::Error>> {
    let text = std::fs::read(path).ok()?;
    Some(serde_json::from_slice(&text))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runner::why::Why;
    use crate::stop_reason::StopReason;

    #[test]
    fn lines_come_back_as_the_events_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let key: Arc<str> = "work[a]".into();
        let finished = Event::IterationFinished {
            key: Arc::clone(&key),
            iteration: 2,
            exit_code: 1,
            verdict: Verdict::NotDone(Why::default()),
            duration: Duration::from_millis(1500),
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                cost_usd: 0.25,
            },
        };
        let mut reader = LineReader::new(path.clone());
        assert!(reader.read_new().is_empty(), "no file yet");
        let mut writer = LineWriter::create(&path).unwrap();
        writer.write(&Line::of(&finished).unwrap()).unwrap();
        // Half a line: left for the next look.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"event\":\"iteration_sta")
            .unwrap();
        let got: Vec<Event> = reader
            .read_new()
            .into_iter()
            .map(Line::into_event)
            .collect();
        assert_eq!(got.len(), 1);
        let Event::IterationFinished {
            key: k,
            iteration,
            verdict,
            duration,
            usage,
            ..
        } = &got[0]
        else {
            panic!("{got:?}");
        };
        assert_eq!((&**k, *iteration), ("work[a]", 2));
        assert_eq!(verdict, &Verdict::NotDone(Why::default()));
        assert_eq!(*duration, Duration::from_millis(1500));
        assert!((usage.cost_usd - 0.25).abs() < 1e-9);
        assert!(reader.read_new().is_empty(), "the half line waits");
    }

    #[test]
    fn an_outcome_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outcome.json");
        assert!(read_outcome(&path).is_none());
        let mut out = Outcome::ended(
            super::super::super::outcome::Status::Done,
            StopReason::Skipped { need: "a".into() },
        );
        out.iterations = 3;
        out.duration = Duration::from_millis(42);
        out.json = Some(serde_json::json!({"x": [1, 2]}));
        write_outcome(&path, &out).unwrap();
        let back = read_outcome(&path).unwrap().unwrap();
        assert_eq!(back.stop_reason, out.stop_reason);
        assert_eq!((back.iterations, back.duration), (3, out.duration));
        assert_eq!(back.json, out.json);
    }
}
