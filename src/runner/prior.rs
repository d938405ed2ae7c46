//! Owns what earlier applies of the workflow left that this one builds on
//! (DESIGN §3, §9.12, §9.16): instances whose latest completed run has the
//! fingerprint they have now are up to date and are not run again (their
//! answer is read back from the run store for whoever needs it), and, when
//! this apply continues an unfinished one, instances that were interrupted
//! resume their loop where it stopped.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::job::{Job, JobKind};
use super::outcome::{Outcome, Status};
use crate::agents::answer::{extract_json, read_capped};
use crate::store::index::InstanceRecord;

/// Stop reasons of an instance that did not end by itself.
const INTERRUPTED: &[&str] = &["interrupted", "conductor_died", "invalidated"];

/// Stop reason of an instance that was not run because it is up to date.
pub const UP_TO_DATE: &str = "up_to_date";

/// Earlier records this apply may use.
#[derive(Debug, Default)]
pub struct Prior {
    project_dir: PathBuf,
    done: BTreeMap<String, InstanceRecord>,
    /// Instance keys interrupted in the apply being continued, with their record.
    interrupted: BTreeMap<String, InstanceRecord>,
    /// Run-time instances `--force` names.
    forced_later: HashSet<String>,
}

impl Prior {
    /// From the workflow's index; `continued` is the apply being continued, if any.
    pub fn new(
        project_dir: PathBuf,
        index: &crate::store::index::Index,
        continued: Option<&str>,
    ) -> Self {
        let interrupted = continued
            .map(|apply| {
                index
                    .last
                    .iter()
                    .filter(|(_, r)| {
                        r.apply_id == apply
                            && (r.status == "running"
                                || INTERRUPTED.contains(&r.stop_reason.as_str()))
                    })
                    .map(|(k, r)| (k.clone(), r.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            project_dir,
            done: index.done.clone(),
            interrupted,
            forced_later: HashSet::new(),
        }
    }

    pub fn force_later(&mut self, keys: HashSet<String>) {
        self.forced_later = keys;
    }

    /// Whether `--force` named this run-time instance.
    pub fn forces(&self, key: &str) -> bool {
        self.forced_later.contains(key)
    }

    /// Whether `job`'s latest completed run had the fingerprint `job` has
    /// now, and its task folder is still there.
    pub fn is_current(&self, job: &Job) -> bool {
        self.current_record(job).is_some()
    }

    fn current_record(&self, job: &Job) -> Option<&InstanceRecord> {
        if job.forced {
            return None;
        }
        let record = self.done.get(&*job.key)?;
        (record.fingerprint == job.fingerprint.hash
            && self.project_dir.join(&record.task_id).is_dir())
        .then_some(record)
    }

    /// The outcome of `job`'s completed run, when [`Self::is_current`];
    /// its answer is read back from the run store only when `answer` says
    /// something will read it.
    pub fn up_to_date(&self, job: &Job, answer: bool) -> Option<Outcome> {
        let record = self.current_record(job)?;
        let task_dir = self.project_dir.join(&record.task_id);
        let mut out = Outcome::ended(Status::Done, UP_TO_DATE);
        out.iterations = record.iterations;
        out.task_id = Some(record.task_id.clone());
        out.run_id = Some(record.run_id.clone()).filter(|r| !r.is_empty());
        if let (true, JobKind::Agent(agent), Some(run)) = (answer, &job.kind, &out.run_id) {
            let run_dir = task_dir.join("runs").join(run);
            out.output = read_capped(&run_dir.join("output.md"));
            if agent.json {
                out.json = extract_json(&out.output);
            }
        }
        out.task_dir = Some(task_dir);
        Some(out)
    }

    /// Whether `job` was interrupted in the apply being continued, with the
    /// fingerprint it has now: then it resumes with its iteration count.
    pub fn resumes(&self, job: &Job) -> bool {
        !job.forced
            && self
                .interrupted
                .get(&*job.key)
                .is_some_and(|r| r.fingerprint == job.fingerprint.hash)
    }
}

/// What `--force` names that is known only at run time.
#[derive(Debug, Default)]
pub struct Forced {
    /// Names that match nothing, now or at run time.
    pub unknown: Vec<String>,
    /// Keys of run-time fan-out instances (`work[x]`), forced when they appear.
    pub later: HashSet<String>,
}

/// Marks the jobs `--force` names (node ids or instance keys; none: all)
/// and everything downstream of them.
pub fn force(jobs: &mut [Job], names: &[String], node_ids: &[&str]) -> Forced {
    let mut forced: HashSet<usize> = HashSet::new();
    let mut out = Forced::default();
    if names.is_empty() {
        forced.extend(0..jobs.len());
    }
    for name in names {
        let before = forced.len();
        for (i, job) in jobs.iter().enumerate() {
            if &*job.key == name.as_str() || node_ids.get(job.node) == Some(&name.as_str()) {
                forced.insert(i);
            }
        }
        if forced.len() > before {
            continue;
        }
        let fan_out = name.split_once('[').is_some_and(|(node, _)| {
            jobs.iter().any(|j| {
                matches!(j.kind, JobKind::FanOut { .. }) && node_ids.get(j.node) == Some(&node)
            })
        });
        if fan_out && name.ends_with(']') {
            out.later.insert(name.clone());
        } else {
            out.unknown.push(name.clone());
        }
    }
    let mut dependents = vec![Vec::new(); jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        for &n in &job.needs {
            dependents[n].push(i);
        }
    }
    let mut queue: Vec<usize> = forced.iter().copied().collect();
    while let Some(i) = queue.pop() {
        for &d in &dependents[i] {
            if forced.insert(d) {
                queue.push(d);
            }
        }
    }
    for i in forced {
        jobs[i].forced = true;
    }
    out
}
