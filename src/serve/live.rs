//! Owns the live side of the API: server-sent event streams of a bus's
//! records, of an apply as it changes, of the overview, and of a run's
//! output as it is written (docs/api.md, "Live"). Each resumes from the
//! `Last-Event-ID` a reconnecting browser sends: a bus stream from the
//! message id, an output stream from the byte offset.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::stream;

use super::documents;
use super::error::ApiError;
use super::read::{BusQuery, RunFile, blocking, bus_path, run_dir};
use super::state::Server;
use crate::bus::Message;

/// How often a followed file is looked at: a record reaches the page in
/// about this much time (a `stat` each; nothing is read until it grows).
const BUS_POLL: Duration = Duration::from_millis(25);
const OUTPUT_POLL: Duration = Duration::from_millis(100);
const APPLY_POLL: Duration = Duration::from_millis(500);
const OVERVIEW_POLL: Duration = Duration::from_secs(2);
/// An unchanged apply or overview is sent again this often, for its ages.
const REFRESH: Duration = Duration::from_secs(5);
/// At most this much of a run's file is read for one event, so a huge
/// output streams in pieces instead of being held whole.
const CHUNK: u64 = 256 * 1024;
/// A first connection to a bus stream gets this many of its last records.
const FIRST: usize = 50;

type Events = Sse<
    axum::response::sse::KeepAliveStream<
        std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>,
    >,
>;

fn sse(s: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Events {
    Sse::new(Box::pin(s) as std::pin::Pin<Box<dyn Stream<Item = _> + Send>>)
        .keep_alive(KeepAlive::default())
}

fn last_event_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

fn message_event(m: &Message) -> Event {
    let event = Event::default()
        .event("message")
        .data(serde_json::to_string(m).unwrap_or_default());
    // An id an event cannot carry (a line break: a hand-written bus) is
    // left out rather than sent broken.
    if m.msg_id.contains(['\n', '\r', '\0']) {
        event
    } else {
        event.id(m.msg_id.clone())
    }
}

struct BusFollow {
    path: PathBuf,
    offset: u64,
    queue: VecDeque<Message>,
}

pub(super) async fn messages(
    State(server): State<Arc<Server>>,
    Path(project): Path<String>,
    Query(q): Query<BusQuery>,
    headers: HeaderMap,
) -> Result<Events, ApiError> {
    let since = last_event_id(&headers);
    let follow = blocking(move || {
        let path = bus_path(&server, &project, q.task_id.as_deref())?;
        let (first, offset) = match since {
            Some(id) => {
                let (all, offset) = crate::bus::read_from(&path, 0)?;
                match all.iter().position(|m| m.msg_id == id) {
                    Some(at) => (all[at + 1..].to_vec(), offset),
                    // A cursor this bus does not hold: start as new.
                    None => (all[all.len().saturating_sub(FIRST)..].to_vec(), offset),
                }
            }
            None => crate::bus::tail_with_offset(&path, FIRST)?,
        };
        Ok(BusFollow {
            path,
            offset,
            queue: first.into(),
        })
    })
    .await?;
    let s = stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(m) = f.queue.pop_front() {
                return Some((Ok(message_event(&m)), f));
            }
            tokio::time::sleep(BUS_POLL).await;
            let grown = std::fs::metadata(&f.path).is_ok_and(|m| m.len() > f.offset);
            if grown && let Ok((more, next)) = crate::bus::read_from(&f.path, f.offset) {
                f.offset = next;
                f.queue.extend(more);
            }
        }
    });
    Ok(sse(s))
}

/// A JSON document followed by polling: sent at once, then when it
/// changes (its volatile fields, the ages, aside) or every [`REFRESH`].
struct Snapshot<F> {
    make: F,
    event: &'static str,
    every: Duration,
    last: Option<(String, Instant)>,
    first: bool,
}

fn snapshots<F>(snap: Snapshot<F>) -> impl Stream<Item = Result<Event, Infallible>> + Send
where
    F: Fn() -> Result<serde_json::Value, ApiError> + Clone + Send + Sync + 'static,
{
    stream::unfold(snap, |mut s| async move {
        loop {
            if !s.first {
                tokio::time::sleep(s.every).await;
            }
            s.first = false;
            let make = s.make.clone();
            let Ok(Ok(mut value)) = tokio::task::spawn_blocking(make).await else {
                continue;
            };
            let data = value.to_string();
            documents::steady(&mut value);
            let key = value.to_string();
            let due = match &s.last {
                None => true,
                Some((k, at)) => *k != key || at.elapsed() >= REFRESH,
            };
            if due {
                s.last = Some((key, Instant::now()));
                return Some((Ok(Event::default().event(s.event).data(data)), s));
            }
        }
    })
}

pub(super) async fn apply(
    State(server): State<Arc<Server>>,
    Path((project, apply_id)): Path<(String, String)>,
) -> Result<Events, ApiError> {
    // Refused at once when there is no such apply.
    let check = (Arc::clone(&server), project.clone(), apply_id.clone());
    blocking(move || super::read::find(&check.0, &check.1, &check.2).map(|_| ())).await?;
    let slot = server.documents.slot(&project, &apply_id);
    let follow = ApplyFollow {
        server,
        slot,
        project,
        apply_id,
        sent: None,
    };
    let s = stream::unfold(follow, |mut f| async move {
        loop {
            if f.sent.is_some() {
                tokio::time::sleep(APPLY_POLL).await;
            }
            let Ok((version, data)) = f.current().await else {
                continue;
            };
            let due = match f.sent {
                None => true,
                Some((v, at)) => v != version || at.elapsed() >= REFRESH,
            };
            if due {
                f.sent = Some((version, Instant::now()));
                return Some((Ok(Event::default().event("apply").data(&*data)), f));
            }
        }
    });
    Ok(sse(s))
}

/// A stream on an apply: the shared slot of its document, and the version
/// it last sent and when.
struct ApplyFollow {
    server: Arc<Server>,
    slot: documents::Slot,
    project: String,
    apply_id: String,
    sent: Option<(u64, Instant)>,
}

impl ApplyFollow {
    async fn current(&self) -> Result<(u64, Arc<str>), ApiError> {
        let bus = self
            .server
            .project_dir(&self.project)
            .map(|d| crate::store::layout::ProjectDir::at(d).bus())?;
        let (server, p, a) = (
            Arc::clone(&self.server),
            self.project.clone(),
            self.apply_id.clone(),
        );
        documents::current(&self.slot, &bus, move || {
            let d = super::read::apply_detail(&server, &p, &a)?;
            serde_json::to_value(d).map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await
    }
}

pub(super) async fn overview(State(server): State<Arc<Server>>) -> Events {
    let make = move || {
        let o = super::read::overview(&server)?;
        serde_json::to_value(o).map_err(|e| ApiError::Internal(e.to_string()))
    };
    sse(snapshots(Snapshot {
        make,
        event: "overview",
        every: OVERVIEW_POLL,
        last: None,
        first: true,
    }))
}

struct OutputFollow {
    run: crate::store::layout::RunDir,
    path: PathBuf,
    offset: u64,
    transcript: Option<crate::agents::transcript::Transcript>,
    ended: bool,
}

impl OutputFollow {
    /// What is new, and whether the run has ended with all of it read.
    fn more(&mut self) -> (String, bool) {
        // Read the run's state first: output written before it ended is
        // then read below, whole.
        let over =
            crate::store::RunInfo::read(&self.run.info()).is_ok_and(|i| i.status != "running");
        let (text, next) = match self.transcript.as_mut() {
            Some(t) => {
                crate::view::transcript::from_at_most(&self.path, self.offset, t, over, CHUNK)
            }
            None => read_from(&self.path, self.offset),
        };
        // Not over while more is left to read than one chunk took.
        let more_left = std::fs::metadata(&self.path).is_ok_and(|m| m.len() > next);
        self.offset = next;
        (text, over && !more_left)
    }
}

fn read_from(path: &std::path::Path, offset: u64) -> (String, u64) {
    crate::view::text::span(path, offset, CHUNK)
}

pub(super) async fn output(
    State(server): State<Arc<Server>>,
    Path((project, task, run, name)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Events, ApiError> {
    let file = RunFile::parse(&name)?;
    let resume: u64 = last_event_id(&headers)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let follow = blocking(move || {
        let run = run_dir(&server, &project, &task, &run)?;
        let path = file.path(&run);
        let mut transcript = if file == RunFile::Transcript {
            crate::view::transcript::of(&run)
        } else {
            None
        };
        // A transcript resumed mid-stream reads what came before again,
        // unsent, for the state it left (a tool call awaiting its result).
        let offset = match transcript.as_mut() {
            Some(t) if resume > 0 => {
                // Up to the cursor only, a piece at a time.
                let mut at = 0;
                while at < resume {
                    let (_, next) = crate::view::transcript::from_at_most(
                        &path,
                        at,
                        t,
                        false,
                        CHUNK.min(resume - at),
                    );
                    if next == at {
                        break;
                    }
                    at = next;
                }
                at
            }
            _ => resume,
        };
        Ok(OutputFollow {
            run,
            path,
            offset,
            transcript,
            ended: false,
        })
    })
    .await?;
    let s = stream::unfold(follow, |mut f| async move {
        if f.ended {
            return None;
        }
        loop {
            let (text, over) = f.more();
            if !text.is_empty() {
                let data = serde_json::json!({"text": text}).to_string();
                let event = Event::default()
                    .event("chunk")
                    .id(f.offset.to_string())
                    .data(data);
                return Some((Ok(event), f));
            }
            if over {
                f.ended = true;
                return Some((Ok(Event::default().event("end").data("{}")), f));
            }
            tokio::time::sleep(OUTPUT_POLL).await;
        }
    });
    Ok(sse(s))
}
