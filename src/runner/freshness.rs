//! Owns telling, before anything runs, which instances an apply would run
//! and why (DESIGN §3 step 2): each instance is new, up to date, or changed
//! since its last completed run, and for a changed one the parts that
//! changed (the prompt, an input file, the agent, an upstream instance).
//! `conductor plan` prints this; the answer comes from the same
//! fingerprints and index that `apply` uses, so the two cannot disagree.

use std::collections::BTreeMap;
use std::path::Path;

use super::fingerprint::{self, Fingerprint};
use super::job::{self, JobKind};
use super::{ApplyError, agent_path, runs_root};
use crate::compile::Program;
use crate::plan::Plan;

/// How many changed parts are named before "and N more".
const SHOWN: usize = 4;

/// What an apply would do with an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Never completed.
    New,
    /// Its last record is not a completed run (it failed, or was stopped).
    NotDone(String),
    /// Completed with the fingerprint it has now: it will not run.
    UpToDate,
    /// Completed with another fingerprint; what differs.
    Changed(Vec<String>),
    /// Decided when the apply gets there (gates, run-time fan-out).
    AtRunTime,
}

impl Freshness {
    pub fn text(&self) -> String {
        match self {
            Self::New => "new".into(),
            Self::NotDone(why) => format!("will run again (last run: {why})"),
            Self::UpToDate => "up to date".into(),
            Self::Changed(what) if what.len() > SHOWN => format!(
                "changed: {}, and {} more",
                what[..SHOWN].join(", "),
                what.len() - SHOWN
            ),
            Self::Changed(what) => format!("changed: {}", what.join(", ")),
            Self::AtRunTime => "decided at run time".into(),
        }
    }
}

/// The freshness of every instance of the plan, by instance key.
pub fn of_plan(
    program: &Program,
    plan: &Plan,
    root_flag: Option<&Path>,
) -> Result<BTreeMap<String, Freshness>, ApplyError> {
    let mut jobs = job::build(program, plan).map_err(|e| ApplyError::Invalid(e.to_string()))?;
    let root = runs_root(program, root_flag);
    let project_dir = root.join(&program.project);
    let exe = std::env::current_exe().unwrap_or_default();
    let path_var = agent_path(&exe);
    let versions = crate::agents::version::Versions::default();
    fingerprint::compute(
        &mut jobs,
        &mut fingerprint::Context {
            program,
            plan,
            inputs: &mut fingerprint::inputs::InputHasher::new(vec![root.clone()]),
            versions: &versions,
            path_var: &path_var,
        },
    );
    let index = crate::store::index::Index::load(&project_dir, &program.name);
    // What a run-time fan-out becomes, and so what everything downstream
    // of it depends on, is known only when it runs.
    let mut at_run_time = vec![false; jobs.len()];
    let mut out = BTreeMap::new();
    for i in fingerprint::topological(&jobs) {
        let job = &jobs[i];
        at_run_time[i] =
            matches!(job.kind, JobKind::FanOut { .. }) || job.needs.iter().any(|&n| at_run_time[n]);
        let state = match &job.kind {
            JobKind::Gate(_) => Freshness::AtRunTime,
            _ if at_run_time[i] => Freshness::AtRunTime,
            _ => freshness(&project_dir, &index, &job.key, &job.fingerprint),
        };
        out.insert(job.key.to_string(), state);
    }
    Ok(out)
}

fn freshness(
    project_dir: &Path,
    index: &crate::store::index::Index,
    key: &str,
    now: &Fingerprint,
) -> Freshness {
    let Some(done) = index.done.get(key) else {
        return match index.last.get(key) {
            Some(last) if last.status != "done" => Freshness::NotDone(last_words(last)),
            _ => Freshness::New,
        };
    };
    let task_dir = project_dir.join(&done.task_id);
    if done.fingerprint == now.hash && task_dir.is_dir() {
        return Freshness::UpToDate;
    }
    if !task_dir.is_dir() {
        return Freshness::Changed(vec!["its run folder is gone".into()]);
    }
    match Fingerprint::load(&task_dir) {
        Some(old) if old.hash == done.fingerprint => {
            let what = now.changes(&old);
            if what.is_empty() {
                Freshness::Changed(vec!["its definition".into()])
            } else {
                Freshness::Changed(what)
            }
        }
        _ => Freshness::Changed(vec!["its definition".into()]),
    }
}

fn last_words(last: &crate::store::index::InstanceRecord) -> String {
    if last.stop_reason.is_empty() {
        last.status.clone()
    } else {
        format!("{} ({})", last.status, last.stop_reason)
    }
}
