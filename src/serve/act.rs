//! Owns the API's actions, each what a person at a terminal would do: post
//! to a bus, press Ctrl-C on a running conductor (SIGINT to the process
//! that holds the apply's lock), start `conductor apply` on a workflow file
//! under `--workflows`, or again with `--force` for one instance. None of
//! them writes workflow-level state: the running conductor stays its only
//! writer (docs/api.md, "Acting").

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::read::{blocking, bus_path, find};
use super::state::Server;

/// The message types a person may post.
const POST_TYPES: [&str; 9] = [
    "USER", "ANSWER", "PROGRESS", "FACT", "DECISION", "QUESTION", "INFO", "WARN", "ERROR",
];

/// The longest body a person may post.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Post {
    #[serde(default)]
    task_id: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    body: String,
    #[serde(default)]
    parent: Option<String>,
}

pub(super) async fn post(
    State(server): State<Arc<Server>>,
    Path(project): Path<String>,
    Json(p): Json<Post>,
) -> Result<Response, ApiError> {
    let kind = p
        .kind
        .clone()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "USER".into());
    // Conductor's own records (WORKFLOW_START, NODE_*, RUN_*) say what
    // runs and where: a person posts messages, never those.
    if !POST_TYPES.contains(&kind.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "type `{}`: a person posts one of {}",
            kind.escape_default(),
            POST_TYPES.join(", ")
        )));
    }
    if p.body.trim().is_empty() {
        return Err(ApiError::BadRequest("the message body is empty".into()));
    }
    if p.body.len() > MAX_BODY {
        return Err(ApiError::BadRequest(format!(
            "the message body is {} bytes; at most {MAX_BODY}",
            p.body.len()
        )));
    }
    let msg_id = blocking(move || {
        let path = bus_path(&server, &project, p.task_id.as_deref())?;
        let parents = match p.parent.filter(|x| !x.is_empty()) {
            Some(parent) => {
                let known = crate::bus::read_all(&path)?
                    .iter()
                    .any(|m| m.msg_id == parent);
                if !known {
                    return Err(ApiError::BadRequest(format!(
                        "parent `{parent}` is not a message of this bus"
                    )));
                }
                vec![parent]
            }
            None => Vec::new(),
        };
        let mut meta = BTreeMap::new();
        meta.insert("from".to_string(), "web".to_string());
        let msg = crate::bus::NewMessage {
            kind,
            project_id: project.clone(),
            task_id: p.task_id.unwrap_or_default(),
            run_id: String::new(),
            parents,
            meta,
            // A key pasted into a reply is not written (docs/security.md).
            body: crate::secrets::Redactor::of_this_process()
                .redact(&p.body)
                .into_owned(),
        };
        let mut writer =
            crate::bus::BusWriter::open(&path).map_err(|e| ApiError::Internal(e.to_string()))?;
        writer
            .append(&msg)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"msg_id": msg_id})),
    )
        .into_response())
}

pub(super) async fn stop_apply(
    State(server): State<Arc<Server>>,
    Path((project, apply_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let (dir, _, pid) = running(&server, &project, &apply_id)?;
        // A second Ctrl-C kills at once: asked twice, it is sent once.
        let first = crate::store::live::mark_stopping(&dir, &apply_id)
            .map_err(|e| ApiError::Internal(format!("cannot record the stop: {e}")))?;
        if !first {
            return Ok(());
        }
        // A Ctrl-C to it stops the apply gracefully.
        rustix::process::kill_process(pid, rustix::process::Signal::INT).map_err(|e| {
            ApiError::Internal(format!("cannot signal pid {}: {e}", pid.as_raw_nonzero()))
        })
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"stopping": true})),
    )
        .into_response())
}

pub(super) async fn stop_instance(
    State(server): State<Arc<Server>>,
    Path((project, apply_id, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    blocking(move || {
        let (dir, apply, pid) = running(&server, &project, &apply_id)?;
        if apply.start.meta.get("stop_requests").map(String::as_str) != Some("usr1") {
            return Err(ApiError::Conflict(
                "this apply's conductor takes no request to stop one instance; stop the whole apply".into(),
            ));
        }
        let last = apply
            .records
            .iter()
            .rev()
            .find(|m| m.meta.get("instance") == Some(&key))
            .ok_or_else(|| ApiError::NotFound(format!("no instance `{key}` has started in apply `{apply_id}`")))?;
        if last.kind != "NODE_START" {
            return Err(ApiError::Conflict(format!("instance `{key}` is not running")));
        }
        crate::store::live::request_stop(&dir, &apply_id, &key)
            .map_err(|e| ApiError::Internal(format!("cannot write the stop request: {e}")))?;
        rustix::process::kill_process(pid, rustix::process::Signal::USR1).map_err(|e| {
            ApiError::Internal(format!("cannot signal pid {}: {e}", pid.as_raw_nonzero()))
        })
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"stopping": true})),
    )
        .into_response())
}

/// The running apply `apply_id` of `project`: its folder, its records and
/// the pid of its conductor, read from its lock file (held, so the process
/// is alive; never from a bus record, which anyone may write).
fn running(
    server: &Server,
    project: &str,
    apply_id: &str,
) -> Result<
    (
        std::path::PathBuf,
        crate::view::applies::Apply,
        rustix::process::Pid,
    ),
    ApiError,
> {
    let (dir, apply) = find(server, project, apply_id)?;
    let pid = crate::store::live::running_pid(&dir, apply_id)
        .filter(|_| apply.stop.is_none())
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| ApiError::Conflict(format!("apply `{apply_id}` is not running")))?;
    Ok((dir, apply, pid))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Start {
    file: String,
    #[serde(default)]
    params: BTreeMap<String, serde_json::Value>,
}

pub(super) async fn start(
    State(server): State<Arc<Server>>,
    Json(s): Json<Start>,
) -> Result<Response, ApiError> {
    let sets: Vec<String> = s
        .params
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(text) => format!("{k}={text}"),
            other => format!("{k}={other}"),
        })
        .collect();
    let (pid, workflow) = blocking(move || {
        let file = server.workflow_file(&s.file)?;
        launch(&server, &file, &sets, None, None)
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"pid": pid, "workflow": workflow})),
    )
        .into_response())
}

pub(super) async fn rerun(
    State(server): State<Arc<Server>>,
    Path((project, apply_id, key)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (pid, workflow) = blocking(move || {
        let (dir, apply) = find(&server, &project, &apply_id)?;
        let file = apply
            .start
            .meta
            .get("file")
            .map(PathBuf::from)
            .ok_or_else(|| {
                ApiError::Conflict("this apply did not record its workflow file".into())
            })?;
        if let Some(holder) = crate::store::live::workflow_holder(&dir, apply.workflow()) {
            return Err(ApiError::Conflict(format!(
                "workflow `{}` is being applied ({holder}); re-run when it ends",
                apply.workflow()
            )));
        }
        if !apply
            .records
            .iter()
            .any(|m| m.meta.get("instance") == Some(&key))
        {
            return Err(ApiError::NotFound(format!(
                "no instance `{key}` in apply `{apply_id}`"
            )));
        }
        let sets: Vec<String> = apply
            .start
            .meta
            .get("sets")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        launch(&server, &file, &sets, Some(&key), Some(apply.workflow()))
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"pid": pid, "workflow": workflow})),
    )
        .into_response())
}

/// Starts `conductor apply FILE` under the server's root, after checking
/// that it plans (a bad param is the form's error, not a failed apply),
/// that it is the workflow `expect` names (a re-run), and that no apply of
/// it runs; its pid and the workflow's name.
fn launch(
    server: &Server,
    file: &FsPath,
    sets: &[String],
    force: Option<&str>,
    expect: Option<&str>,
) -> Result<(u32, String), ApiError> {
    let root = server.options.root.as_path();
    let options = crate::load::LoadOptions {
        root: Some(root),
        ..crate::load::LoadOptions::default()
    };
    let load = crate::load::load(file, sets, options);
    let said: Vec<String> = load
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    let Some(loaded) = load.into_loaded().filter(|_| said.is_empty()) else {
        return Err(ApiError::BadRequest(said.join("; ")));
    };
    let workflow = loaded.plan.workflow.clone();
    if expect.is_some_and(|w| w != workflow) {
        return Err(ApiError::Conflict(format!(
            "{} is now workflow `{workflow}`, not the one this apply ran",
            file.display()
        )));
    }
    let project_dir = crate::store::layout::ProjectDir::new(root, &loaded.plan.project);
    if let Some(holder) = crate::store::live::workflow_holder(project_dir.path(), &workflow) {
        return Err(ApiError::Conflict(format!(
            "workflow `{workflow}` is being applied ({holder}); start it when that ends"
        )));
    }
    let exe = std::env::current_exe().map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("apply").arg(file).arg("--root").arg(root);
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    if let Some(key) = force {
        cmd.arg(format!("--force={key}"));
    }
    // The server's token is not the agents' to read.
    if let Some(name) = &server.options.token_env {
        cmd.env_remove(name);
    }
    // Its own process group: a Ctrl-C to the server is not one to the
    // applies it started, which run to their end like any other.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.current_dir(file.parent().unwrap_or(root))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::Internal(format!("cannot start conductor apply: {e}")))?;
    let pid = child.id();
    // An apply that cannot start says so within moments (exit 3: a
    // missing agent or key): that is the request's answer, not a 202.
    for _ in 0..10 {
        if let Ok(Some(status)) = child.try_wait() {
            if status.success() {
                return Ok((pid, workflow));
            }
            return Err(ApiError::Conflict(format!(
                "conductor apply {} exited at once with {status}; run it in a terminal to see why",
                file.display()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    // Reaped when it ends, so no zombie is left behind.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok((pid, workflow))
}
