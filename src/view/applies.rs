//! Finds applies in the run store, from the project buses alone (no index
//! to go stale): "the latest apply" for `status` and `logs`, every apply
//! for `conductor serve`, one by its id. An apply is its `WORKFLOW_START`
//! record and every NODE_* record carrying the same apply id.

use std::path::{Path, PathBuf};

use crate::bus::{Message, read_all};
use crate::store::layout::ProjectDir;

/// One apply, as its records tell it.
#[derive(Debug)]
pub(crate) struct Apply {
    pub project_dir: PathBuf,
    pub start: Message,
    pub stop: Option<Message>,
    /// NODE_* records in order.
    pub records: Vec<Message>,
    /// The other workflows applied under the same root (with no
    /// `--workflow`): the user may have meant one of them.
    pub others: Vec<String>,
}

impl Apply {
    pub(crate) fn workflow(&self) -> &str {
        self.start.meta.get("workflow").map_or("", String::as_str)
    }

    /// `note: ...` saying which workflow is shown, when others were
    /// applied under the same root; empty otherwise.
    pub(crate) fn which(&self) -> String {
        if self.others.is_empty() {
            return String::new();
        }
        format!(
            "note: showing workflow `{}`; also applied under this root: {} (--workflow FILE picks one)",
            self.workflow(),
            self.others.join(", ")
        )
    }

    pub(crate) fn apply_id(&self) -> &str {
        self.start.meta.get("apply_id").map_or("", String::as_str)
    }

    /// Whether the conductor that ran it is gone without a `WORKFLOW_STOP`
    /// (it no longer holds its lock; a pid could have been reused).
    pub(crate) fn abandoned(&self) -> bool {
        self.stop.is_none() && !crate::store::live::is_running(&self.project_dir, self.apply_id())
    }
}

/// Why no apply could be shown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FindError {
    #[error("no apply found under {0}\n  help: run `conductor apply FILE`, or pass --root")]
    None(String),
    #[error("{0}")]
    Workflow(String),
    #[error(transparent)]
    Read(#[from] crate::bus::ReadError),
}

/// The latest apply under the location's root: of its workflow, if given;
/// else, when `instance` is given, the latest that ran it; else the latest.
pub(crate) fn latest(
    root: Option<&Path>,
    workflow: Option<&Path>,
    instance: Option<&str>,
) -> Result<Apply, FindError> {
    let (root, project, workflow) = match workflow {
        Some(file) => {
            if !file.exists() {
                return Err(FindError::Workflow(format!(
                    "{}: no such file (--workflow takes the workflow's file)",
                    file.display()
                )));
            }
            let Some(program) = crate::load::program(file) else {
                return Err(FindError::Workflow(format!(
                    "{} is not a valid workflow; run `conductor validate` on it",
                    file.display()
                )));
            };
            let root = crate::store::layout::runs_root(root, program.declared_root());
            (
                root,
                Some(program.project.clone()),
                Some(program.name.clone()),
            )
        }
        None => (crate::store::layout::runs_root(root, None), None, None),
    };
    let buses: Vec<PathBuf> = match &project {
        Some(p) => vec![ProjectDir::new(&root, p).bus()],
        None => std::fs::read_dir(&root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| ProjectDir::at(e.path()).bus())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default(),
    };
    // The latest apply of each workflow under the root.
    let mut candidates: Vec<Apply> = Vec::new();
    let mut read: Vec<(PathBuf, Vec<Message>)> = Vec::new();
    for bus in buses {
        if !bus.is_file() {
            continue;
        }
        read.push((bus.clone(), read_all(&bus)?));
        let messages = &read[read.len() - 1].1;
        let mut seen: Vec<&str> = Vec::new();
        for (at, m) in messages.iter().enumerate().rev() {
            if m.kind != "WORKFLOW_START" {
                continue;
            }
            let name = m.meta.get("workflow").map_or("", String::as_str);
            if workflow.as_ref().is_some_and(|w| w != name) || seen.contains(&name) {
                continue;
            }
            seen.push(name);
            candidates.push(apply_at(&bus, messages, at));
        }
    }
    let names: std::collections::BTreeSet<String> = candidates
        .iter()
        .map(|a| a.workflow().to_string())
        .collect();
    // The latest that ran `instance`, when one is asked for; else the latest.
    let ran = |a: &&Apply| {
        instance.is_none_or(|k| {
            a.records
                .iter()
                .any(|m| m.meta.get("instance").map(String::as_str) == Some(k))
        })
    };
    // None of the latest ran it (an `--only` apply came after): an earlier
    // apply that did, newest first.
    if instance.is_some() && !candidates.iter().any(|a| ran(&a)) {
        let mut earlier: Vec<Apply> = Vec::new();
        for (bus, messages) in &read {
            for (at, m) in messages.iter().enumerate().rev() {
                let name = m.meta.get("workflow").map_or("", String::as_str);
                if m.kind == "WORKFLOW_START" && workflow.as_ref().is_none_or(|w| w == name) {
                    let apply = apply_at(bus, messages, at);
                    if ran(&&apply) {
                        earlier.push(apply);
                        break;
                    }
                }
            }
        }
        candidates.extend(earlier);
    }
    let chosen = newest(candidates.iter().filter(ran))
        .or_else(|| newest(candidates.iter()))
        .map(|a| a.start.clone());
    let Some(start) = chosen else {
        return Err(FindError::None(root.display().to_string()));
    };
    let mut best = candidates
        .into_iter()
        .find(|a| a.start.msg_id == start.msg_id)
        .ok_or_else(|| FindError::None(root.display().to_string()))?;
    best.others = names
        .into_iter()
        .filter(|n| n.as_str() != best.workflow())
        .collect();
    Ok(best)
}

/// The one that started last.
fn newest<'a>(applies: impl Iterator<Item = &'a Apply>) -> Option<&'a Apply> {
    applies.max_by(|a, b| a.start.ts.cmp(&b.start.ts))
}

/// The apply that the `WORKFLOW_START` at `at` begins.
fn apply_at(bus: &Path, messages: &[Message], at: usize) -> Apply {
    let id = messages[at]
        .meta
        .get("apply_id")
        .cloned()
        .unwrap_or_default();
    let mine = |m: &&Message| m.meta.get("apply_id") == Some(&id);
    let rest = &messages[at + 1..];
    Apply {
        project_dir: bus.parent().map(Path::to_path_buf).unwrap_or_default(),
        start: messages[at].clone(),
        stop: rest
            .iter()
            .filter(mine)
            .find(|m| m.kind == "WORKFLOW_STOP")
            .cloned(),
        records: rest
            .iter()
            .filter(mine)
            .filter(|m| m.kind.starts_with("NODE_"))
            .cloned()
            .collect(),
        others: Vec::new(),
    }
}

/// Every apply of every project under `root`, newest first within a
/// project; projects by name.
pub(crate) fn all(root: &Path) -> Result<Vec<(String, Vec<Apply>)>, FindError> {
    let mut projects: Vec<(String, Vec<Apply>)> = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(projects);
    };
    for entry in entries.filter_map(Result::ok) {
        let bus = ProjectDir::at(entry.path()).bus();
        if !bus.is_file() {
            continue;
        }
        let messages = read_all(&bus)?;
        // A continued apply started again under its id: its last start.
        let mut seen = std::collections::HashSet::new();
        let applies: Vec<Apply> = messages
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, m)| {
                m.kind == "WORKFLOW_START"
                    && seen.insert(m.meta.get("apply_id").cloned().unwrap_or_default())
            })
            .map(|(at, _)| apply_at(&bus, &messages, at))
            .collect();
        projects.push((entry.file_name().to_string_lossy().into_owned(), applies));
    }
    projects.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(projects)
}

/// The apply `apply_id` of the project at `project_dir`: the last
/// `WORKFLOW_START` with that id (a continued apply starts again under the
/// same id), with every record of the id after the first.
pub(crate) fn find(project_dir: &Path, apply_id: &str) -> Result<Option<Apply>, FindError> {
    let bus = ProjectDir::at(project_dir.to_path_buf()).bus();
    if !bus.is_file() {
        return Ok(None);
    }
    let messages = read_all(&bus)?;
    Ok(messages
        .iter()
        .rposition(|m| {
            m.kind == "WORKFLOW_START"
                && m.meta.get("apply_id").map(String::as_str) == Some(apply_id)
        })
        .map(|at| apply_at(&bus, &messages, at)))
}
