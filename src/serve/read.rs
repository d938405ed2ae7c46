//! Owns the API's reading side: the server, the overview of every apply
//! under the root, one apply, one instance with its iterations, a run's
//! files, a bus, the workflows a form may start (docs/api.md). Everything
//! is read from the run store as `status` and `logs` read it (`view`).

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::guard::segment;
use super::state::Server;
use super::summary::{self, ApplyDetail, ApplySummary};
use crate::bus::Message;
use crate::store::layout::{ProjectDir, TaskDir};
use crate::view::applies::Apply;
use crate::view::report::{Depth, Instance};

/// A run's file is served whole up to this size, else its end.
const TAIL: u64 = 8 << 20;

/// At most this many applies of one workflow in the overview.
const APPLIES_PER_WORKFLOW: usize = 20;

/// Runs blocking reads of the run store off the server's thread.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct ServerInfo {
    version: &'static str,
    root: String,
    read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflows_dir: Option<String>,
}

pub(super) async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub(super) async fn server_info(State(server): State<Arc<Server>>) -> Json<impl Serialize> {
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION"),
        root: server.options.root.display().to_string(),
        read_only: server.options.read_only,
        workflows_dir: server
            .options
            .workflows
            .as_ref()
            .map(|d| d.display().to_string()),
    })
}

/// A task folder no conductor apply wrote (the Go system's).
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(super) struct OtherTask {
    task_id: String,
    runs: usize,
    /// Its latest run's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    done: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(super) struct ProjectView {
    project: String,
    applies: Vec<ApplySummary>,
    tasks: Vec<OtherTask>,
}

#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(super) struct Overview {
    projects: Vec<ProjectView>,
}

/// Every project under the root with its applies, newest first.
pub(super) fn overview(server: &Server) -> Result<Overview, ApiError> {
    let mut projects = Vec::new();
    for (project, applies) in crate::view::applies::all(&server.options.root)? {
        let mut per_workflow: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        let mut ours: HashSet<String> = HashSet::new();
        let mut summaries = Vec::new();
        for apply in &applies {
            for m in &apply.records {
                ours.insert(m.task_id.clone());
            }
            let n = per_workflow
                .entry(apply.workflow().to_string())
                .or_default();
            *n += 1;
            if *n > APPLIES_PER_WORKFLOW {
                continue;
            }
            let report = crate::view::report::build(apply, None, Depth::Records);
            summaries.push(summary::summary(&project, apply, &report));
        }
        let dir = ProjectDir::new(&server.options.root, &project);
        projects.push(ProjectView {
            tasks: other_tasks(&dir, &ours),
            project,
            applies: summaries,
        });
    }
    Ok(Overview { projects })
}

/// Task folders of the project that none of its applies' records name
/// (every instance's start is recorded before its folder is made).
fn other_tasks(dir: &ProjectDir, ours: &HashSet<String>) -> Vec<OtherTask> {
    let Ok(entries) = std::fs::read_dir(dir.path()) else {
        return Vec::new();
    };
    let mut out: Vec<OtherTask> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| crate::store::is_task_id(name) && !ours.contains(name))
        .map(|task_id| {
            let task = dir.task(&task_id);
            let runs = task.run_dirs();
            let status = runs
                .last()
                .and_then(|r| crate::store::RunInfo::read(&r.info()).ok())
                .map(|i| i.status);
            OtherTask {
                runs: runs.len(),
                status,
                done: task.done().exists(),
                task_id,
            }
        })
        .collect();
    out.sort_by(|a, b| b.task_id.cmp(&a.task_id));
    out
}

pub(super) async fn overview_json(State(server): State<Arc<Server>>) -> Result<Response, ApiError> {
    let o = blocking(move || overview(&server)).await?;
    Ok(Json(o).into_response())
}

/// The apply `apply_id` of `project`.
pub(super) fn find(
    server: &Server,
    project: &str,
    apply_id: &str,
) -> Result<(std::path::PathBuf, Apply), ApiError> {
    let dir = server.project_dir(segment(project)?)?;
    let apply = crate::view::applies::find(&dir, segment(apply_id)?)?.ok_or_else(|| {
        ApiError::NotFound(format!("no apply `{apply_id}` in project `{project}`"))
    })?;
    Ok((dir, apply))
}

/// One apply, whole.
pub(super) fn apply_detail(
    server: &Server,
    project: &str,
    apply_id: &str,
) -> Result<ApplyDetail, ApiError> {
    let (dir, apply) = find(server, project, apply_id)?;
    let plan = server.plan(&apply.start);
    let report = crate::view::report::build(&apply, plan.as_deref(), Depth::Runs);
    let questions = open_questions(&dir, &report.instances);
    Ok(ApplyDetail {
        summary: summary::summary(project, &apply, &report),
        file: apply.start.meta.get("file").cloned(),
        attention: summary::attention(&apply, &report, &questions),
        instances: report.instances,
    })
}

/// Each running instance's `QUESTION`s that no message answers (names it
/// as a parent).
fn open_questions(dir: &std::path::Path, instances: &[Instance]) -> Vec<(String, Message)> {
    let project = ProjectDir::at(dir.to_path_buf());
    let mut out = Vec::new();
    if !instances.iter().any(|r| r.state == "running") {
        return out;
    }
    // Read once for all of them: an apply may run hundreds at a time.
    let project_bus = crate::bus::read_all(&project.bus()).unwrap_or_default();
    for r in instances
        .iter()
        .filter(|r| r.state == "running" && !r.task_id.is_empty())
    {
        let mut messages =
            crate::bus::read_all(&project.task(&r.task_id).bus()).unwrap_or_default();
        messages.extend(
            project_bus
                .iter()
                .filter(|m| m.task_id == r.task_id)
                .cloned(),
        );
        let answered: HashSet<String> = messages
            .iter()
            .flat_map(|m| m.parents.iter())
            .filter_map(parent_id)
            .collect();
        for q in messages
            .iter()
            .filter(|m| m.kind == "QUESTION" && !answered.contains(&m.msg_id))
        {
            out.push((r.instance.clone(), q.clone()));
        }
    }
    out
}

/// A parent as the bus writes it: an id, or `{msg_id: ...}`.
fn parent_id(p: &serde_json::Value) -> Option<String> {
    match p {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => {
            o.get("msg_id").and_then(|v| v.as_str()).map(str::to_string)
        }
        _ => None,
    }
}

pub(super) async fn apply_json(
    State(server): State<Arc<Server>>,
    Path((project, apply_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let d = blocking(move || apply_detail(&server, &project, &apply_id)).await?;
    Ok(Json(d).into_response())
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(super) struct InstanceDetail {
    instance: Instance,
    iterations: Vec<crate::view::iterations::Iteration>,
    /// A merge node's: what it merged and what it left, a line per branch
    /// (as `conductor logs` prints it).
    #[serde(skip_serializing_if = "Option::is_none")]
    merge: Option<String>,
}

pub(super) async fn instance_json(
    State(server): State<Arc<Server>>,
    Path((project, apply_id, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let d = blocking(move || {
        let detail = apply_detail(&server, &project, &apply_id)?;
        let instance = detail
            .instances
            .into_iter()
            .find(|r| r.instance == key)
            .ok_or_else(|| {
                ApiError::NotFound(format!("no instance `{key}` in apply `{apply_id}`"))
            })?;
        let (iterations, merge) = if instance.task_id.is_empty() {
            (Vec::new(), None)
        } else {
            let dir = server.project_dir(&project)?;
            let task = ProjectDir::at(dir).task(segment(&instance.task_id)?);
            (
                crate::view::iterations::of(&task),
                crate::runner::merge::told(&task),
            )
        };
        Ok(InstanceDetail {
            instance,
            iterations,
            merge,
        })
    })
    .await?;
    Ok(Json(d).into_response())
}

/// A run's file the API serves, by its name in the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunFile {
    Prompt,
    Output,
    Stdout,
    Stderr,
    Transcript,
}

impl RunFile {
    pub(super) fn parse(name: &str) -> Result<Self, ApiError> {
        Ok(match name {
            "prompt" => Self::Prompt,
            "output" => Self::Output,
            "stdout" => Self::Stdout,
            "stderr" => Self::Stderr,
            "transcript" => Self::Transcript,
            _ => {
                return Err(ApiError::NotFound(format!(
                    "no run file `{name}`: prompt, output, stdout, stderr or transcript"
                )));
            }
        })
    }

    /// The file it reads (a transcript reads the stream).
    pub(super) fn path(self, run: &crate::store::layout::RunDir) -> std::path::PathBuf {
        match self {
            Self::Prompt => run.prompt(),
            Self::Output => run.output(),
            Self::Stderr => run.stderr(),
            Self::Stdout | Self::Transcript => run.stdout(),
        }
    }
}

/// The run folder named by the URL, checked to exist.
pub(super) fn run_dir(
    server: &Server,
    project: &str,
    task: &str,
    run: &str,
) -> Result<crate::store::layout::RunDir, ApiError> {
    let dir = server.project_dir(segment(project)?)?;
    let task = TaskDir::at(dir.join(segment(task)?));
    let run = task.run(segment(run)?);
    // A folder an agent linked elsewhere is not the run store's.
    let inside = std::fs::canonicalize(run.path())
        .ok()
        .zip(std::fs::canonicalize(&server.options.root).ok())
        .is_some_and(|(r, root)| r.starts_with(root));
    if !run.path().is_dir() || !inside {
        return Err(ApiError::NotFound("no such run".into()));
    }
    Ok(run)
}

pub(super) async fn run_file(
    State(server): State<Arc<Server>>,
    Path((project, task, run, name)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let file = RunFile::parse(&name)?;
    let text = blocking(move || {
        let run = run_dir(&server, &project, &task, &run)?;
        let path = file.path(&run);
        // A huge file is served by its end (its stream serves it all).
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let skipped = size.saturating_sub(TAIL);
        let note = if skipped > 0 {
            format!("[the first {skipped} bytes are not shown here; the file's stream has them]\n")
        } else {
            String::new()
        };
        if file == RunFile::Transcript
            && let Some(mut t) = crate::view::transcript::of(&run)
        {
            let said = crate::view::transcript::from(&path, skipped, &mut t, true).0;
            return Ok(note + &said);
        }
        let (text, _) = crate::view::text::span(&path, skipped, TAIL);
        Ok(note + &text)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct BusQuery {
    pub task_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub q: Option<String>,
    pub limit: Option<usize>,
}

/// The bus a query names: the project's, or one task's.
pub(super) fn bus_path(
    server: &Server,
    project: &str,
    task: Option<&str>,
) -> Result<std::path::PathBuf, ApiError> {
    let dir = ProjectDir::at(server.project_dir(segment(project)?)?);
    match task.filter(|t| !t.is_empty()) {
        Some(t) => {
            let task = dir.task(segment(t)?);
            if !task.path().is_dir() {
                return Err(ApiError::NotFound(format!(
                    "no task `{t}` in project `{project}`"
                )));
            }
            Ok(task.bus())
        }
        None => Ok(dir.bus()),
    }
}

pub(super) async fn messages(
    State(server): State<Arc<Server>>,
    Path(project): Path<String>,
    Query(q): Query<BusQuery>,
) -> Result<Response, ApiError> {
    let list = blocking(move || {
        let path = bus_path(&server, &project, q.task_id.as_deref())?;
        let all = crate::bus::read_all(&path)?;
        let limit = q.limit.unwrap_or(200).min(5000);
        let matching: Vec<Message> = all
            .into_iter()
            .filter(|m| {
                q.kind
                    .as_deref()
                    .is_none_or(|k| k.is_empty() || m.kind == k)
            })
            .filter(|m| q.q.as_deref().is_none_or(|t| m.body.contains(t)))
            .collect();
        let from = matching.len().saturating_sub(limit);
        Ok(matching[from..].to_vec())
    })
    .await?;
    Ok(Json(serde_json::json!({"messages": list})).into_response())
}

pub(super) async fn workflows(State(server): State<Arc<Server>>) -> Result<Response, ApiError> {
    let list = blocking(move || {
        Ok(server
            .options
            .workflows
            .as_deref()
            .map(crate::view::workflows::list)
            .unwrap_or_default())
    })
    .await?;
    Ok(Json(serde_json::json!({"workflows": list})).into_response())
}
