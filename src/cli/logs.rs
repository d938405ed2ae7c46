//! `conductor logs INSTANCE [-f]`: an instance's agent output from its
//! latest run; with `--follow`, printed as it is written, moving on to each
//! new iteration's run, until the instance ends.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::LogsArgs;
use crate::agents::transcript::Transcript;
use crate::exit_code;
use crate::report::PrintableBytes;
use crate::store::layout::{ProjectDir, RunDir, TaskDir};
use crate::view::applies::{Apply, FindError, latest};

/// Why an instance's output cannot be shown.
#[derive(Debug, thiserror::Error)]
enum LogsError {
    #[error(transparent)]
    Find(#[from] FindError),
    #[error("no instance `{name}` has started in apply {apply}; instances: {known}")]
    NotStarted {
        name: String,
        apply: String,
        known: String,
    },
    #[error("node `{node}` has {} instances; name one: {}", .instances.len(), .instances.join(", "))]
    Ambiguous {
        node: String,
        instances: Vec<String>,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bus(#[from] crate::bus::ReadError),
}

pub(super) fn logs(args: &LogsArgs) -> u8 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            exit_code::ENVIRONMENT
        }
    }
}

fn run(args: &LogsArgs) -> Result<u8, LogsError> {
    // Without an instance: which there are, and how to ask for one.
    let Some(instance) = &args.instance else {
        let code = super::status::status(&super::args::StatusArgs {
            location: args.location.clone(),
            json: false,
        });
        if code == exit_code::OK {
            let _ = writeln!(
                std::io::stderr(),
                "conductor logs KEY prints an instance's output (-f follows it)"
            );
        }
        return Ok(code);
    };
    let mut apply = if args.follow {
        starting_apply(&args.location, instance)?
    } else {
        latest(
            args.location.root.as_deref(),
            args.location.workflow.as_deref(),
            Some(instance),
        )?
    };
    let which = apply.which();
    if !which.is_empty() {
        let _ = writeln!(std::io::stderr(), "{which}");
    }
    // The first poll reads the bus from its start once more, so a record
    // appended while `latest` read it is seen twice rather than missed;
    // later polls read only what was appended.
    let mut bus_offset = 0;
    let Some(task_id) = task_of(&apply, instance)? else {
        let known: Vec<String> = instances(&apply);
        return Err(LogsError::NotStarted {
            name: instance.clone(),
            apply: apply.apply_id().to_string(),
            known: if known.is_empty() {
                "none yet".to_string()
            } else {
                known.join(", ")
            },
        });
    };
    // An isolated instance's work is on its branch (docs/isolation.md).
    if let Some(m) = apply
        .records
        .iter()
        .rev()
        .find(|m| m.task_id == task_id && m.meta.contains_key("branch"))
    {
        let changed = m
            .meta
            .get("changed")
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "{instance}: branch {}{changed}",
            m.meta.get("branch").map_or("", String::as_str)
        );
    }
    let task = ProjectDir::at(apply.project_dir.clone()).task(&task_id);
    let file = |run: &RunDir| {
        if args.stderr {
            run.stderr()
        } else {
            run.stdout()
        }
    };
    // A CLI agent's stream reads as a transcript unless asked raw.
    let transcript = |run: &RunDir| {
        if args.stderr || args.raw {
            return None;
        }
        let info = crate::store::RunInfo::read(&run.info()).ok()?;
        Transcript::new(crate::model::AgentKind::parse(&info.agent)?)
    };
    let mut out = std::io::stdout().lock();
    if !args.follow {
        let Some(run) = latest_run(&task) else {
            // A merge node runs no agent of its own: what it merged.
            if let Some(told) = crate::runner::merge::told(&task) {
                let _ = writeln!(out, "{told}");
            }
            return Ok(exit_code::OK);
        };
        if let Some(mut t) = transcript(&run) {
            let path = run.stdout();
            let mut escape = PrintableBytes::default();
            transcript_from(&path, 0, &mut t, &mut escape, &mut out, true);
            return Ok(exit_code::OK);
        }
        let path = file(&run);
        let read = |source| LogsError::Read {
            path: path.clone(),
            source,
        };
        // Agents' output is shown, never played: escape sequences in it
        // are printed as `\xNN` (docs/security.md).
        let mut f = std::fs::File::open(&path).map_err(read)?;
        let mut escape = PrintableBytes::default();
        let mut buf = vec![0u8; 64 << 10];
        let mut shown = Vec::new();
        loop {
            let n = f.read(&mut buf).map_err(read)?;
            if n == 0 {
                break;
            }
            escape.push(buf.get(..n).unwrap_or_default(), &mut shown);
            out.write_all(&shown).map_err(read)?;
            shown.clear();
        }
        escape.finish(&mut shown);
        out.write_all(&shown).map_err(read)?;
        return Ok(exit_code::OK);
    }
    // Follow: poll the run's file for growth (a file that is being appended
    // to raises no event notify reports reliably across new run folders).
    let mut current: Option<(RunDir, u64, Option<Option<Transcript>>)> = None;
    let mut escape = PrintableBytes::default();
    // What is new in the run's file since `offset`: as a transcript, whole
    // lines only (`last`: the rest too), or as it is.
    // Whether a run reads as a transcript is known once its run-info.yaml
    // is written (when its agent starts); until then nothing of it is
    // printed, unless it is over (`last`), then as it is.
    let more = |run: &RunDir,
                offset: u64,
                t: &mut Option<Option<Transcript>>,
                escape: &mut PrintableBytes,
                out: &mut std::io::StdoutLock<'_>,
                last: bool| {
        if t.is_none() && (args.stderr || args.raw || run.info().exists()) {
            *t = Some(transcript(run));
        }
        match t {
            Some(Some(t)) => transcript_from(&run.stdout(), offset, t, escape, out, last),
            Some(None) => copy_from(&file(run), offset, escape, out),
            None if last => copy_from(&file(run), offset, escape, out),
            None => offset,
        }
    };
    loop {
        let newest = latest_run(&task);
        if let Some(run) = newest
            && current.as_ref().is_none_or(|(c, _, _)| *c != run)
        {
            if let Some((old, offset, t)) = current.as_mut() {
                more(old, *offset, t, &mut escape, &mut out, true);
                let mut rest = Vec::new();
                escape.finish(&mut rest);
                let _ = out.write_all(&rest);
            }
            let _ = writeln!(out, "==> {} <==", run.path().display());
            current = Some((run, 0, None));
        }
        if let Some((run, offset, t)) = current.as_mut() {
            *offset = more(run, *offset, t, &mut escape, &mut out, false);
        }
        let _ = out.flush();
        if ended(&apply, instance) {
            if let Some((run, offset, t)) = current.as_mut() {
                more(run, *offset, t, &mut escape, &mut out, true);
            }
            let mut rest = Vec::new();
            escape.finish(&mut rest);
            let _ = out.write_all(&rest);
            return Ok(exit_code::OK);
        }
        std::thread::sleep(Duration::from_millis(100));
        bus_offset = follow_bus(&mut apply, bus_offset)?;
    }
}

/// How long `logs -f` waits for an apply that is starting.
const START_WAIT: Duration = Duration::from_mins(1);

/// The apply `logs -f` follows: when an apply of the workflow is starting
/// (it holds the workflow's lock, its first record is not written yet), or
/// none has been made yet, that one, waited for; never the one before it.
fn starting_apply(
    location: &super::args::StoreLocation,
    instance: &str,
) -> Result<Apply, LogsError> {
    let waited = std::time::Instant::now();
    let mut told = false;
    loop {
        let found = latest(
            location.root.as_deref(),
            location.workflow.as_deref(),
            Some(instance),
        );
        let starting = match &found {
            Ok(apply) if apply.stop.is_some() => {
                crate::store::live::workflow_holder(&apply.project_dir, apply.workflow())
                    .filter(|holder| !holder.starts_with(apply.apply_id()))
            }
            // Nothing applied yet: the first apply may be starting.
            Err(FindError::None(_)) => Some("the first apply".to_string()),
            _ => None,
        };
        let Some(holder) = starting else {
            return Ok(found?);
        };
        if waited.elapsed() > START_WAIT {
            return Ok(found?);
        }
        if !told {
            told = true;
            let _ = writeln!(
                std::io::stderr(),
                "waiting for the apply that is starting ({holder})"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Adds the records appended to the apply's project bus since `offset` (read
/// from there, never the whole bus again); returns the new offset.
fn follow_bus(apply: &mut Apply, offset: u64) -> Result<u64, LogsError> {
    let bus = ProjectDir::at(apply.project_dir.clone()).bus();
    let (messages, next) = crate::bus::read_from(&bus, offset)?;
    let id = apply.apply_id().to_string();
    for m in messages {
        if m.meta.get("apply_id") != Some(&id) {
            continue;
        }
        if m.kind == "WORKFLOW_STOP" {
            apply.stop = Some(m);
        } else if m.kind.starts_with("NODE_") {
            apply.records.push(m);
        }
    }
    Ok(next)
}

/// The instances the apply's records name, each once, in the order they
/// first appear.
fn instances(apply: &Apply) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    apply
        .records
        .iter()
        .filter_map(|m| m.meta.get("instance"))
        .filter(|k| seen.insert(k.as_str()))
        .cloned()
        .collect()
}

/// The task of the instance named `name` (its key, or a node with one instance).
fn task_of(apply: &Apply, name: &str) -> Result<Option<String>, LogsError> {
    // An instance's task is named by its start, or, for an instance that
    // was up to date, by its `NODE_DONE` (the task of its earlier run); the
    // latest wins (a continued apply starts instances again).
    let mut latest: std::collections::BTreeMap<&str, &crate::bus::Message> =
        std::collections::BTreeMap::new();
    for m in apply
        .records
        .iter()
        .filter(|m| !m.task_id.is_empty() && matches!(m.kind.as_str(), "NODE_START" | "NODE_DONE"))
    {
        if let Some(key) = m.meta.get("instance") {
            latest.insert(key, m);
        }
    }
    if let Some(m) = latest.get(name) {
        return Ok(Some(m.task_id.clone()));
    }
    let by_node: Vec<_> = latest
        .into_values()
        .filter(|m| m.meta.get("node").map(String::as_str) == Some(name))
        .collect();
    match by_node.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.task_id.clone())),
        many => Err(LogsError::Ambiguous {
            node: name.to_string(),
            instances: many
                .iter()
                .filter_map(|m| m.meta.get("instance").cloned())
                .collect(),
        }),
    }
}

fn ended(apply: &Apply, name: &str) -> bool {
    apply.stop.is_some()
        || apply.abandoned()
        || apply.records.iter().any(|m| {
            m.kind != "NODE_START"
                && (m.meta.get("instance").map(String::as_str) == Some(name)
                    || m.meta.get("node").map(String::as_str) == Some(name))
        })
}

/// The newest run folder of a task (run ids sort in creation order).
fn latest_run(task: &TaskDir) -> Option<RunDir> {
    task.run_dirs().into_iter().rfind(|r| r.path().is_dir())
}

/// Copies `path` from `offset` to `out`, escaped; returns the new offset.
/// The transcript of the stream at `path` from `offset` on, whole lines
/// only unless `last` (then the rest, and what the transcript still
/// holds); the offset after what was read.
fn transcript_from(
    path: &Path,
    offset: u64,
    t: &mut Transcript,
    escape: &mut PrintableBytes,
    out: &mut impl Write,
    last: bool,
) -> u64 {
    let (said, offset) = crate::view::transcript::from(path, offset, t, last);
    // Agents' text is shown, never played (docs/security.md).
    let mut shown = Vec::new();
    escape.push(said.as_bytes(), &mut shown);
    let _ = out.write_all(&shown);
    offset
}

fn copy_from(path: &Path, offset: u64, escape: &mut PrintableBytes, out: &mut impl Write) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return offset;
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut buf = Vec::new();
    let n = f.read_to_end(&mut buf).unwrap_or(0);
    let mut shown = Vec::new();
    escape.push(buf.get(..n).unwrap_or_default(), &mut shown);
    let _ = out.write_all(&shown);
    offset + n as u64
}
