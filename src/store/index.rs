//! Owns the apply index of one workflow in a project (docs/watch.md): its
//! latest apply (to continue it) and, per instance key, its latest
//! record and its latest completed run with that run's fingerprint (to
//! skip it when up to date). The index is a cache of the project
//! bus: `<project>/.index/<workflow>.json` remembers how far into the bus it
//! has read, each load folds in the records appended since, and a missing
//! or unreadable index is rebuilt from the bus alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::bus::{Message, read_from};

/// Bumped when the file's shape changes; another version is rebuilt.
const VERSION: u32 = 1;

/// One apply of the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRecord {
    pub apply_id: String,
    /// RFC 3339, as `WORKFLOW_START` recorded it.
    pub apply_start: String,
    /// `done`, `failed`, `interrupted`, `abandoned`; `None` while no stop is recorded.
    pub status: Option<String>,
}

/// An instance's record in one apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub apply_id: String,
    /// `running` (started, no end recorded), `done`, `failed`, `skipped`.
    pub status: String,
    pub stop_reason: String,
    pub task_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    #[serde(default)]
    pub iterations: u32,
}

/// What the bus says about one workflow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    version: u32,
    /// Bytes of the project bus folded in so far.
    bus_offset: u64,
    pub latest: Option<ApplyRecord>,
    /// The latest record of each instance key.
    pub last: BTreeMap<String, InstanceRecord>,
    /// The latest completed record of each instance key.
    pub done: BTreeMap<String, InstanceRecord>,
}

/// Where the index of `workflow` lives.
pub fn path(project_dir: &Path, workflow: &str) -> PathBuf {
    let name: String = workflow
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    project_dir.join(".index").join(format!("{name}.json"))
}

impl Index {
    /// The index brought up to date with the project bus.
    pub fn load(project_dir: &Path, workflow: &str) -> Self {
        let bus = project_dir.join(super::layout::PROJECT_BUS);
        let bus_len = std::fs::metadata(&bus).map_or(0, |m| m.len());
        let mut index = std::fs::read(path(project_dir, workflow))
            .ok()
            .and_then(|b| serde_json::from_slice::<Self>(&b).ok())
            .filter(|i| i.version == VERSION && i.bus_offset <= bus_len)
            .unwrap_or_default();
        index.version = VERSION;
        index.catch_up(project_dir, workflow);
        index
    }

    /// This index (kept in memory by a watch between its applies) brought
    /// up to date with the project bus as [`Self::load`] would: the records
    /// appended since are folded in, and a bus that shrank under it (made
    /// anew) means reading it afresh.
    #[must_use]
    pub fn refreshed(mut self, project_dir: &Path, workflow: &str) -> Self {
        let bus = project_dir.join(super::layout::PROJECT_BUS);
        let bus_len = std::fs::metadata(&bus).map_or(0, |m| m.len());
        // A runs root made anew has neither.
        if self.bus_offset > bus_len || !path(project_dir, workflow).is_file() {
            return Self::load(project_dir, workflow);
        }
        self.catch_up(project_dir, workflow);
        self
    }

    /// Folds in what was appended to the project bus since.
    pub fn catch_up(&mut self, project_dir: &Path, workflow: &str) {
        let bus = project_dir.join(super::layout::PROJECT_BUS);
        let bus_len = std::fs::metadata(&bus).map_or(0, |m| m.len());
        if self.bus_offset >= bus_len {
            return;
        }
        match read_from(&bus, self.bus_offset) {
            Ok((messages, next)) => {
                for m in &messages {
                    self.fold(workflow, m);
                }
                self.bus_offset = next;
            }
            Err(e) => tracing::warn!("cannot read the project bus: {e}"),
        }
    }

    /// Saves it (a cache: failing to save costs a longer read next time).
    pub fn save(&self, project_dir: &Path, workflow: &str) {
        let file = path(project_dir, workflow);
        let written = file
            .parent()
            .map_or(Ok(()), crate::private::create_dir_all)
            .and_then(|()| serde_json::to_vec(self).map_err(std::io::Error::other))
            .and_then(|bytes| crate::store::write_atomic_fast(&file, &bytes));
        if let Err(e) = written {
            tracing::debug!("cannot save the apply index {}: {e}", file.display());
        }
    }

    /// Takes one project-bus record into account.
    pub fn fold(&mut self, workflow: &str, m: &Message) {
        if m.meta.get("workflow").map(String::as_str) != Some(workflow) {
            return;
        }
        let meta = |k: &str| m.meta.get(k).cloned().unwrap_or_default();
        let apply_id = meta("apply_id");
        match m.kind.as_str() {
            "WORKFLOW_START" => {
                self.latest = Some(ApplyRecord {
                    apply_id,
                    apply_start: meta("apply_start"),
                    status: None,
                });
            }
            // A failure a gate tolerated stands, while its fingerprint
            // holds, as a completed result does.
            "INFO" if meta("tolerated") == "true" => {
                let key = meta("instance");
                if key.is_empty() || m.task_id.is_empty() || meta("fingerprint").is_empty() {
                    return;
                }
                self.done.insert(
                    key,
                    InstanceRecord {
                        apply_id,
                        status: "failed".to_string(),
                        stop_reason: meta("stop_reason"),
                        task_id: m.task_id.clone(),
                        run_id: meta("run_id"),
                        fingerprint: meta("fingerprint"),
                        iterations: meta("iterations").parse().unwrap_or(0),
                    },
                );
            }
            "INFO" if meta("tolerated") == "false" => {
                let key = meta("instance");
                if self.done.get(&key).is_some_and(|r| r.status == "failed") {
                    self.done.remove(&key);
                }
            }
            "WORKFLOW_STOP" => {
                if let Some(latest) = self.latest.as_mut().filter(|l| l.apply_id == apply_id) {
                    latest.status = Some(meta("status"));
                }
            }
            "NODE_START" | "NODE_DONE" | "NODE_FAILED" | "NODE_SKIPPED" => {
                let key = meta("instance");
                if key.is_empty() {
                    return;
                }
                let status = match m.kind.as_str() {
                    "NODE_START" => "running",
                    "NODE_DONE" => "done",
                    "NODE_FAILED" => "failed",
                    _ => "skipped",
                };
                let record = InstanceRecord {
                    apply_id,
                    status: status.to_string(),
                    stop_reason: meta("stop_reason"),
                    task_id: m.task_id.clone(),
                    run_id: meta("run_id"),
                    fingerprint: meta("fingerprint"),
                    iterations: meta("iterations").parse().unwrap_or(0),
                };
                if status == "done" && !record.fingerprint.is_empty() && !record.task_id.is_empty()
                {
                    // An up-to-date instance's result is still the one its
                    // run made, for the reason that run ended.
                    let produced = m
                        .meta
                        .get("result_stop_reason")
                        .filter(|r| !r.is_empty())
                        .cloned();
                    let mut done = record.clone();
                    if let Some(r) = produced {
                        done.stop_reason = r;
                    }
                    self.done.insert(key.clone(), done);
                }
                self.last.insert(key, record);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{BusWriter, NewMessage};

    fn post(bus: &mut BusWriter, kind: &str, meta: &[(&str, &str)]) {
        bus.append(&NewMessage {
            kind: kind.into(),
            project_id: "p".into(),
            task_id: if kind.starts_with("NODE") {
                "task-20260101-000000-a-abcdef".into()
            } else {
                String::new()
            },
            meta: meta
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body: "x".into(),
            ..NewMessage::default()
        })
        .unwrap();
    }

    #[test]
    fn folds_the_bus_and_catches_up_from_where_the_saved_index_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut bus = BusWriter::open(&dir.path().join("PROJECT-MESSAGE-BUS.md")).unwrap();
        let w = [("workflow", "w"), ("apply_id", "a1")];
        post(&mut bus, "WORKFLOW_START", &w);
        post(&mut bus, "NODE_START", &[w[0], w[1], ("instance", "a")]);
        post(
            &mut bus,
            "NODE_DONE",
            &[
                w[0],
                w[1],
                ("instance", "a"),
                ("fingerprint", "f1"),
                ("stop_reason", "done_file"),
            ],
        );
        post(
            &mut bus,
            "NODE_DONE",
            &[
                ("workflow", "other"),
                ("instance", "b"),
                ("fingerprint", "f"),
            ],
        );
        let index = Index::load(dir.path(), "w");
        assert_eq!(index.done["a"].fingerprint, "f1");
        assert!(!index.done.contains_key("b"), "another workflow's record");
        assert_eq!(index.latest.as_ref().unwrap().status, None);
        index.save(dir.path(), "w");

        post(
            &mut bus,
            "NODE_FAILED",
            &[
                w[0],
                w[1],
                ("instance", "a"),
                ("stop_reason", "max_iterations"),
            ],
        );
        post(
            &mut bus,
            "WORKFLOW_STOP",
            &[w[0], w[1], ("status", "failed")],
        );
        let index = Index::load(dir.path(), "w");
        assert_eq!(index.last["a"].status, "failed");
        assert_eq!(
            index.done["a"].fingerprint, "f1",
            "the last completed run is kept"
        );
        assert_eq!(index.latest.unwrap().status.as_deref(), Some("failed"));
        // The cache is only a cache: without it the bus gives the same.
        std::fs::remove_file(path(dir.path(), "w")).unwrap();
        let rebuilt = Index::load(dir.path(), "w");
        assert_eq!(rebuilt.last["a"].status, "failed");
    }
}
