//! `conductor bus post` and `conductor bus read`: the bus from a shell, for
//! agents (the preamble tells them how) and for people.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use super::args::{BusCommand, BusLocation, BusPostArgs, BusReadArgs};
use crate::bus::{self, BusWriter, Message, NewMessage};
use crate::exit_code;
use crate::store::layout::{self, PROJECT_BUS, ProjectDir, TASK_BUS};

pub(super) fn run(cmd: &BusCommand) -> u8 {
    let result = match cmd {
        BusCommand::Post(a) => post(a),
        BusCommand::Read(a) => read(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            e.code()
        }
    }
}

/// A failed bus command, with the exit code it means.
#[derive(Debug, thiserror::Error)]
enum BusCliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Append(#[from] bus::AppendError),
    #[error(transparent)]
    Read(#[from] bus::ReadError),
    #[error("cannot watch {path}: {source}")]
    Watch { path: String, source: notify::Error },
    #[error("cannot read the body from stdin: {0}")]
    Stdin(std::io::Error),
    /// `bus read` of a bus that is not there: a misspelt project or task.
    #[error("there is no bus at {}{}", path.display(), hint)]
    NoBus { path: PathBuf, hint: String },
}

impl BusCliError {
    fn code(&self) -> u8 {
        match self {
            Self::Usage(_) | Self::Stdin(_) | Self::Append(bus::AppendError::Missing(_)) => {
                exit_code::INVALID
            }
            Self::Append(_) | Self::Read(_) | Self::Watch { .. } | Self::NoBus { .. } => {
                exit_code::ENVIRONMENT
            }
        }
    }
}

/// Where the bus is: an explicit flag wins over `JRUN_MESSAGE_BUS`.
fn bus_path(loc: &BusLocation) -> Result<PathBuf, BusCliError> {
    if let Some(bus) = &loc.bus {
        return Ok(bus.clone());
    }
    if let Some(project) = &loc.project {
        let root = layout::runs_root(loc.root.as_deref(), None);
        for part in std::iter::once(project).chain(&loc.task) {
            if part.is_empty() || part.contains(['/', '\\']) || part == "." || part == ".." {
                return Err(BusCliError::Usage(format!(
                    "`{part}` is not a project or task id"
                )));
            }
        }
        return Ok(match &loc.task {
            Some(task) => ProjectDir::new(&root, project).task(task).bus(),
            None => ProjectDir::new(&root, project).bus(),
        });
    }
    if loc.task.is_some() {
        return Err(BusCliError::Usage("--task needs --project".to_string()));
    }
    match std::env::var_os("JRUN_MESSAGE_BUS") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(BusCliError::Usage(
            "no bus given: use --bus FILE or --project P [--task T], or run inside an agent (JRUN_MESSAGE_BUS)"
                .to_string(),
        )),
    }
}

/// A runs root in a `.conductor` folder (the default) lives in the project
/// being worked on: keep it out of git (docs/run-store.md).
fn keep_root_out_of_git(loc: &BusLocation) {
    if loc.bus.is_none() && loc.project.is_some() {
        layout::keep_out_of_git(&layout::runs_root(loc.root.as_deref(), None));
    }
}

/// Project and task ids as the bus's place in the run store shows them.
fn ids_from_path(path: &Path) -> (Option<String>, Option<String>) {
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .map(str::to_string)
    };
    match path.file_name().and_then(|n| n.to_str()) {
        Some(TASK_BUS) => {
            let task_dir = path.parent();
            (name(task_dir.and_then(Path::parent)), name(task_dir))
        }
        Some(PROJECT_BUS) => (name(path.parent()), None),
        _ => (None, None),
    }
}

/// What is beside a bus that is not there: `; the projects under ROOT
/// are: a, b` (or the tasks of its project), so that a misspelling shows.
fn siblings(bus: &Path) -> String {
    let task = bus.file_name().and_then(|n| n.to_str()) == Some(TASK_BUS);
    // A task bus is in <project>/<task>/; a project bus in <project>/.
    let Some(place) = bus.parent() else {
        return String::new();
    };
    let Some(folder) = place.parent() else {
        return String::new();
    };
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return String::new();
    }
    names.sort();
    let shown = names.len().min(10);
    let more = if names.len() > shown { ", .." } else { "" };
    let what = if task {
        "the tasks of its project"
    } else {
        "the projects there"
    };
    format!("; {what} are: {}{more}", names[..shown].join(", "))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn post(args: &BusPostArgs) -> Result<u8, BusCliError> {
    let path = bus_path(&args.location)?;
    // Ids the bus's place in the run store shows; when the bus came from
    // JRUN_MESSAGE_BUS the agent's JRUN_* ids describe it better.
    let (path_project, path_task) = ids_from_path(&path);
    let from_env = args.location.bus.is_none() && args.location.project.is_none();
    let pick = |path_value: Option<String>, var: &str| {
        if from_env {
            env(var).or(path_value)
        } else {
            path_value.or_else(|| env(var))
        }
    };
    let project = args
        .location
        .project
        .clone()
        .or_else(|| pick(path_project, "JRUN_PROJECT_ID"))
        .ok_or_else(|| {
            BusCliError::Usage(
                "no project: give --project, or post to a bus in the run store".to_string(),
            )
        })?;
    let task = args
        .location
        .task
        .clone()
        .or_else(|| pick(path_task, "JRUN_TASK_ID"))
        .unwrap_or_default();
    let run = args
        .run
        .clone()
        .or_else(|| env("JRUN_ID"))
        .unwrap_or_default();
    let mut meta = BTreeMap::new();
    for kv in &args.meta {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(BusCliError::Usage(format!(
                "--meta {kv}: expected KEY=VALUE"
            )));
        };
        meta.insert(k.to_string(), v.to_string());
    }
    let body = match &args.body {
        Some(b) => b.clone(),
        None if std::io::stdin().is_terminal() => {
            return Err(BusCliError::Usage(
                "no body: give --body TEXT, or pipe it on stdin".to_string(),
            ));
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(BusCliError::Stdin)?;
            // Nothing at all on stdin is no body (exit-codes.md); any
            // text, even blank lines, is a body: bodies are data.
            if text.is_empty() {
                return Err(BusCliError::Usage(
                    "no body: stdin was empty; give --body TEXT, or pipe the text on stdin"
                        .to_string(),
                ));
            }
            text
        }
    };
    // An agent may post what holds its key: the bus never keeps it.
    let redactor = crate::secrets::Redactor::of_this_process();
    let body = redactor.redact(&body).into_owned();
    let meta: BTreeMap<String, String> = meta
        .into_iter()
        .map(|(k, v)| (k, redactor.redact(&v).into_owned()))
        .collect();
    keep_root_out_of_git(&args.location);
    // A new project or task is allowed (a person may start one), but said:
    // a misspelt name would otherwise post where nobody reads.
    if !path.exists() && args.location.project.is_some() {
        let _ = writeln!(
            std::io::stderr(),
            "note: started a new bus at {}{}",
            path.display(),
            siblings(&path)
        );
    }
    let mut writer = BusWriter::open(&path)?;
    let mut out = std::io::stdout().lock();
    for i in 0..args.repeat {
        let body = if args.repeat > 1 {
            format!("{body} #{i}")
        } else {
            body.clone()
        };
        let msg = NewMessage {
            kind: args.kind.clone(),
            project_id: project.clone(),
            task_id: task.clone(),
            run_id: run.clone(),
            parents: Vec::new(),
            meta: meta.clone(),
            body,
        };
        let id = writer.append(&msg)?;
        if args.repeat == 1 {
            let _ = writeln!(out, "msg_id: {id}");
        }
    }
    Ok(exit_code::OK)
}

fn read(args: &BusReadArgs) -> Result<u8, BusCliError> {
    let path = bus_path(&args.location)?;
    // `--follow` may wait for a bus to appear; a plain read of none is a
    // misspelt project or task, not an empty bus.
    if !args.follow && !path.exists() {
        let mut hint = siblings(&path);
        if args
            .location
            .task
            .as_deref()
            .is_some_and(|t| !t.starts_with("task-"))
        {
            hint.push_str(
                "; --task takes a task id (task-...), not an instance key: `conductor status` shows each instance's task id",
            );
        }
        return Err(BusCliError::NoBus { path, hint });
    }
    let (mut messages, offset) = match (&args.since, args.tail) {
        (Some(since), _) => {
            let all = bus::read_since(&path, since)?;
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            (all, len)
        }
        (None, Some(n)) => bus::tail_with_offset(&path, n)?,
        (None, None) => bus::read_from(&path, 0)?,
    };
    if let (Some(_), Some(n)) = (&args.since, args.tail) {
        let keep = messages.len().saturating_sub(n);
        messages.drain(..keep);
    }
    print_messages(&messages, args.json);
    if args.follow {
        follow(&path, offset, args.json)?;
    }
    Ok(exit_code::OK)
}

fn print_messages(messages: &[Message], json: bool) {
    let mut out = std::io::stdout().lock();
    for m in messages {
        let _ = if json {
            writeln!(out, "{}", serde_json::to_string(m).unwrap_or_default())
        } else {
            writeln!(out, "{}", human(m))
        };
    }
    let _ = out.flush();
}

/// `[2026-03-01 10:15:02] (DECISION) task-x: first line`, further lines indented.
/// A record as a person reads it; what agents wrote is shown, never played
/// (escape sequences appear as `\xNN`).
fn human(m: &Message) -> String {
    let when = m.ts.get(..19).unwrap_or(&m.ts).replace('T', " ");
    let scope = if m.task_id.is_empty() {
        String::new()
    } else {
        format!(" {}:", m.task_id)
    };
    let mut lines = m.body.lines();
    let mut text = format!(
        "[{when}] ({}){scope} {}",
        m.kind,
        lines.next().unwrap_or("")
    );
    for line in lines {
        text.push_str("\n    ");
        text.push_str(line);
    }
    crate::report::printable(&text).into_owned()
}

/// Prints messages as they are appended, woken by file events (inotify on
/// Linux), until interrupted.
fn follow(path: &Path, mut offset: u64, json: bool) -> Result<(), BusCliError> {
    use notify::{RecursiveMode, Watcher};
    let watch_err = |source| BusCliError::Watch {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| watch_err(notify::Error::io(e)))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .map_err(watch_err)?;
    // The folder, not the file: the bus may not exist yet.
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(watch_err)?;
    let name = path.file_name().map(std::ffi::OsStr::to_os_string);
    loop {
        // Events wake us; the timeout only guards against a missed one.
        match rx.recv_timeout(std::time::Duration::from_secs(2)) {
            Ok(Ok(event)) if !event.paths.iter().any(|p| p.file_name() == name.as_deref()) => {
                continue;
            }
            Ok(Err(e)) => return Err(watch_err(e)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            Ok(Ok(_)) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len < offset {
            // Truncated or replaced: start again from its beginning.
            offset = 0;
        }
        if len == offset {
            continue;
        }
        let (messages, next) = bus::read_from(path, offset)?;
        offset = next;
        print_messages(&messages, json);
    }
}
