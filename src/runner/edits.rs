//! Owns re-fingerprinting a watch's last plan after bursts that only
//! edited input files (docs/watch.md, "conductor watch"): the workflow and
//! the files its `for_each` globs find are as they were, so its jobs are
//! too, and only the fingerprints of the jobs whose `inputs` match an
//! edited file change, with those of everything downstream of them. A
//! save of one input of a 10,000-instance fan-out then hashes one file
//! instead of compiling, planning and fingerprinting the whole workflow
//! again (docs/performance.md, issue 18).

use std::path::PathBuf;
use std::sync::Arc;

use super::dispatcher::Control;
use super::job::{self, Job, JobKind, PerJob};
use crate::compile::Program;
use crate::incremental::inputs::InputHasher;
use crate::plan::SuccessCommand;

/// The last plan a watch handed on, kept to be re-fingerprinted.
#[derive(Debug)]
pub(crate) struct LastPlan {
    program: Arc<Program>,
    success: Arc<Vec<SuccessCommand>>,
    jobs: PerJob<Job>,
}

impl LastPlan {
    pub(crate) fn new(
        program: Arc<Program>,
        success: Arc<Vec<SuccessCommand>>,
        jobs: &PerJob<Job>,
    ) -> Self {
        Self {
            program,
            success,
            jobs: jobs.clone(),
        }
    }

    /// The plan to run after `edited`, files that existed before and
    /// were only written to, as a re-plan for the session (and kept as
    /// the last plan); `None` when it must be planned again.
    pub(crate) fn after_edits(
        &mut self,
        edited: &[PathBuf],
        inputs: &mut InputHasher,
        why: String,
    ) -> Option<Control> {
        let jobs = after_edits(&self.jobs, edited, inputs)?;
        self.jobs = jobs.clone();
        Some(Control::Replan {
            jobs,
            program: Arc::clone(&self.program),
            success: Arc::clone(&self.success),
            why,
        })
    }
}

/// `jobs` with the fingerprints `edited` changes, or `None` when that
/// cannot be told without planning again: an isolated job (its base may
/// be a snapshot of the very files edited), an edited output schema, a
/// pattern that cannot be matched without a walk, or an edited file no
/// job's `inputs` match (the watch classified it by another rule).
fn after_edits(
    jobs: &PerJob<Job>,
    edited: &[PathBuf],
    inputs: &mut InputHasher,
) -> Option<PerJob<Job>> {
    if jobs.values().any(|j| j.isolation.is_some()) {
        return None;
    }
    // An output schema is part of the definition it checks.
    let schema_edited = jobs.values().any(|j| {
        let schema = match &j.kind {
            JobKind::Agent(a) => a.schema.as_ref(),
            JobKind::FanOut(f) => f.agent.schema.as_ref(),
            _ => None,
        };
        schema.is_some_and(|s| edited.contains(&s.path))
    });
    if schema_edited {
        return None;
    }
    let mut out = jobs.clone();
    let mut changed = PerJob::filled(jobs.len(), false);
    let mut matched = vec![false; edited.len()];
    for i in job::topological(jobs) {
        let job = &out[i];
        let mut fp = None;
        if hashes_inputs(&job.kind) && !job.inputs.is_empty() {
            let mut touched = false;
            for (k, path) in edited.iter().enumerate() {
                if inputs.touches(&job.workdir, &job.inputs, path)? {
                    matched[k] = true;
                    touched = true;
                }
            }
            if touched {
                let now = inputs.hash(&job.workdir, &job.inputs);
                fp = Some(job.fingerprint.with_inputs(&now));
            }
        }
        if job.needs.iter().any(|&n| changed[n]) {
            let own = fp.as_ref().unwrap_or(&*job.fingerprint);
            fp = Some(own.with_upstream(job::upstream(&out, job)));
        }
        if let Some(fp) = fp
            && fp.hash != out[i].fingerprint.hash
        {
            changed[i] = true;
            out[i].fingerprint = Arc::new(fp);
        }
    }
    matched.iter().all(|m| *m).then_some(out)
}

/// Whether a job's fingerprint holds its inputs' hashes: the jobs whose
/// fingerprint has an agent's parts (`prepare::subject`).
fn hashes_inputs(kind: &JobKind) -> bool {
    match kind {
        JobKind::Agent(_) | JobKind::FanOut(_) => true,
        JobKind::Merge(m) => m.resolver.is_some(),
        JobKind::Gate(_) | JobKind::Group { .. } => false,
    }
}
