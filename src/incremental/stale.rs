//! Owns finalising what a dead conductor left behind (the Go seed leaves
//! such runs `running` forever). At the start of every apply, each earlier apply of
//! the project whose process died while it ran (`store::live`) is closed:
//! its unfinished instances' last runs are marked failed in run-info.yaml
//! and with `RUN_CRASH`, and the project bus gets their `NODE_FAILED` and a
//! `WORKFLOW_STOP`. The bus is only read when there is such an apply.

use std::collections::{BTreeMap, HashSet};

use crate::bus::{BusWriter, Message, NewMessage, read_all};
use crate::stop_reason::StopReason;
use crate::store::RunInfo;
use crate::store::layout::{ProjectDir, RunDir, TaskDir};

/// What was finalised.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Finalised {
    pub applies: usize,
    pub runs: usize,
}

/// Finalises the project's dead applies.
pub(crate) fn finalise(project_dir: &ProjectDir, project: &str) -> Finalised {
    let dead_ids = crate::store::live::dead(project_dir.path());
    if dead_ids.is_empty() {
        return Finalised::default();
    }
    let bus_path = project_dir.bus();
    let Ok(messages) = read_all(&bus_path) else {
        return Finalised::default();
    };
    let apply_of = |m: &Message| m.meta.get("apply_id").cloned().unwrap_or_default();
    let wanted: HashSet<&str> = dead_ids.iter().map(|(id, _)| id.as_str()).collect();
    let stopped: HashSet<String> = messages
        .iter()
        .filter(|m| m.kind == "WORKFLOW_STOP")
        .map(apply_of)
        .collect();
    let dead: Vec<&Message> = messages
        .iter()
        .filter(|m| m.kind == "WORKFLOW_START" && !stopped.contains(&apply_of(m)))
        .filter(|m| wanted.contains(apply_of(m).as_str()))
        .collect();
    for (id, _) in &dead_ids {
        crate::store::live::forget(project_dir.path(), id);
    }
    let Ok(mut bus) = BusWriter::open(&bus_path) else {
        return Finalised::default();
    };
    let mut done = Finalised::default();
    for start in dead {
        let id = apply_of(start);
        // Instances started and not ended, by instance key.
        let mut open: BTreeMap<String, &Message> = BTreeMap::new();
        for m in messages.iter().filter(|m| apply_of(m) == id) {
            let key = m.meta.get("instance").cloned().unwrap_or_default();
            match m.kind.as_str() {
                "NODE_START" => {
                    open.insert(key, m);
                }
                "NODE_DONE" | "NODE_FAILED" | "NODE_SKIPPED" => {
                    open.remove(&key);
                }
                _ => {}
            }
        }
        for m in open.values() {
            done.runs += close_running_runs(&project_dir.task(&m.task_id), project);
            let mut meta: BTreeMap<String, String> = m.meta.clone();
            meta.insert("status".into(), "failed".into());
            meta.insert("stop_reason".into(), StopReason::ConductorDied.to_string());
            append(
                &mut bus,
                &NewMessage {
                    kind: "NODE_FAILED".into(),
                    project_id: project.to_string(),
                    task_id: m.task_id.clone(),
                    meta,
                    body: format!(
                        "{} failed: the conductor running it (pid {}) exited without finishing it",
                        m.meta.get("instance").map_or("", String::as_str),
                        start.meta.get("pid").map_or("", String::as_str)
                    ),
                    ..NewMessage::default()
                },
            );
        }
        let mut meta: BTreeMap<String, String> = BTreeMap::new();
        for k in ["apply_id", "workflow"] {
            if let Some(v) = start.meta.get(k) {
                meta.insert(k.into(), v.clone());
            }
        }
        meta.insert("status".into(), "abandoned".into());
        append(
            &mut bus,
            &NewMessage {
                kind: "WORKFLOW_STOP".into(),
                project_id: project.to_string(),
                meta,
                body: format!("apply {id} finalised: its conductor exited without finishing"),
                ..NewMessage::default()
            },
        );
        done.applies += 1;
    }
    done
}

fn append(bus: &mut BusWriter, msg: &NewMessage) {
    if let Err(e) = bus.append(msg) {
        tracing::warn!("cannot finalise a stale apply: {e}");
    }
}

/// Marks every run of a task still `running` failed: the newest, and any
/// earlier one whose terminal record a power loss took back (a loop makes
/// its records durable once a second, docs/performance.md, "Durability").
fn close_running_runs(task: &TaskDir, project: &str) -> usize {
    task.run_dirs()
        .iter()
        .filter(|run| close_run(task, run, project))
        .count()
}

/// Marks a run failed if it is still `running`.
fn close_run(task: &TaskDir, run: &RunDir, project: &str) -> bool {
    let path = run.info();
    // Read first: a record that is not `running` is not rewritten.
    if !RunInfo::read(&path).is_ok_and(|i| i.status == "running") {
        return false;
    }
    let mut closed = None;
    let _ = RunInfo::update(&path, |info| {
        if info.status == "running" {
            info.status = "failed".into();
            info.end_time = crate::bus::format_ts(crate::clock::now());
            info.error_summary =
                Some("reconciled: conductor exited while the run was going".into());
            info.stop_reason = Some(StopReason::ConductorDied.to_string());
            closed = Some((info.task_id.clone(), info.run_id.clone()));
        }
    });
    let Some((task_id, run_id)) = closed else {
        return false;
    };
    if let Ok(mut bus) = BusWriter::open(&task.bus()) {
        append(
            &mut bus,
            &NewMessage {
                kind: "RUN_CRASH".into(),
                project_id: project.to_string(),
                task_id,
                run_id,
                meta: [(
                    "stop_reason".to_string(),
                    StopReason::ConductorDied.to_string(),
                )]
                .into(),
                body: format!(
                    "run finalised: conductor exited while it ran\nrun_dir: {}",
                    run.path().display()
                ),
                ..NewMessage::default()
            },
        );
    }
    true
}
