//! Owns telling, before anything runs, which instances an apply would run
//! and why (docs/watch.md): each instance is new, up to date, or changed
//! since its last completed run, and for a changed one the parts that
//! changed (the prompt, an input file, the agent, an upstream instance).
//! `conductor plan` prints this; the answer comes from the same
//! fingerprints and index that `apply` uses, so the two cannot disagree.

use super::fingerprint::Fingerprint;
use crate::store::index::{Index, InstanceRecord};
use crate::store::layout::ProjectDir;

/// How many changed parts are named before "and N more".
const SHOWN: usize = 4;

/// What an apply would do with an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Freshness {
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
    pub(crate) fn text(&self) -> String {
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

/// What an apply would do with the instance `key`, whose fingerprint is
/// `now`, given the workflow's index.
pub(crate) fn of(project: &ProjectDir, index: &Index, key: &str, now: &Fingerprint) -> Freshness {
    let Some(done) = index.done.get(key) else {
        return match index.last.get(key) {
            Some(last) if last.status != "done" => Freshness::NotDone(last_words(last)),
            _ => Freshness::New,
        };
    };
    let task = project.task(&done.task_id);
    if done.fingerprint == now.hash && task.path().is_dir() {
        return Freshness::UpToDate;
    }
    if !task.path().is_dir() {
        return Freshness::Changed(vec!["its run folder is gone".into()]);
    }
    match Fingerprint::load(&task) {
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

fn last_words(last: &InstanceRecord) -> String {
    if last.stop_reason.is_empty() {
        last.status.clone()
    } else {
        format!("{} ({})", last.status, last.stop_reason)
    }
}
