//! Finds "the latest apply" for `status` and `logs`, from the project bus
//! alone (no index to go stale): its `WORKFLOW_START` record and every
//! NODE_* record carrying the same apply id.

use std::path::{Path, PathBuf};

use super::args::StoreLocation;
use crate::bus::{Message, read_all};
use crate::store::layout::ProjectDir;

/// One apply, as its records tell it.
#[derive(Debug)]
pub(super) struct Apply {
    pub project_dir: PathBuf,
    pub start: Message,
    pub stop: Option<Message>,
    /// NODE_* records in order.
    pub records: Vec<Message>,
}

impl Apply {
    pub(super) fn apply_id(&self) -> &str {
        self.start.meta.get("apply_id").map_or("", String::as_str)
    }

    /// Whether the conductor that ran it is gone without a `WORKFLOW_STOP`
    /// (it no longer holds its lock; a pid could have been reused).
    pub(super) fn abandoned(&self) -> bool {
        self.stop.is_none() && !crate::store::live::is_running(&self.project_dir, self.apply_id())
    }
}

/// Why no apply could be shown.
#[derive(Debug, thiserror::Error)]
pub(super) enum FindError {
    #[error("no apply found under {0}\n  help: run `conductor apply FILE`, or pass --root")]
    None(String),
    #[error("{0}")]
    Workflow(String),
    #[error(transparent)]
    Read(#[from] crate::bus::ReadError),
}

/// The latest apply under the location's root (of its workflow, if given).
pub(super) fn latest(location: &StoreLocation) -> Result<Apply, FindError> {
    let (root, project, workflow) = match &location.workflow {
        Some(file) => {
            let Some(program) = crate::load::program(file) else {
                return Err(FindError::Workflow(format!(
                    "{} is not a valid workflow; run `conductor validate` on it",
                    file.display()
                )));
            };
            let root =
                crate::store::layout::runs_root(location.root.as_deref(), program.declared_root());
            (
                root,
                Some(program.project.clone()),
                Some(program.name.clone()),
            )
        }
        None => (
            crate::store::layout::runs_root(location.root.as_deref(), None),
            None,
            None,
        ),
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
    let mut best: Option<Apply> = None;
    for bus in buses {
        if !bus.is_file() {
            continue;
        }
        let messages = read_all(&bus)?;
        let Some(at) = messages.iter().rposition(|m| {
            m.kind == "WORKFLOW_START"
                && workflow
                    .as_ref()
                    .is_none_or(|w| m.meta.get("workflow") == Some(w))
        }) else {
            continue;
        };
        if best.as_ref().is_some_and(|b| b.start.ts >= messages[at].ts) {
            continue;
        }
        let id = messages[at]
            .meta
            .get("apply_id")
            .cloned()
            .unwrap_or_default();
        let mine = |m: &&Message| m.meta.get("apply_id") == Some(&id);
        let rest = &messages[at + 1..];
        best = Some(Apply {
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
        });
    }
    best.ok_or_else(|| FindError::None(root.display().to_string()))
}
