//! Owns what `--only` and `--force` select. `--only`: the instances named
//! (by instance key or node id, a sub-workflow id selecting its inner
//! nodes) and everything they need, the rest dropped. `--force`: the
//! instances named and everything downstream of them, run-time instances
//! included when they appear. A name that matches nothing is an invalid
//! invocation.

use std::collections::HashSet;

use super::error::ApplyError;
use super::job::{Job, JobId, JobKind, PerJob};
use crate::compile::Program;

/// The jobs `--only` names and everything they need; every job when it
/// names nothing.
pub(super) fn only(
    jobs: PerJob<Job>,
    names: &[String],
    program: &Program,
) -> Result<PerJob<Job>, ApplyError> {
    if names.is_empty() {
        return Ok(jobs);
    }
    let mut keep = PerJob::filled(jobs.len(), false);
    let mut stack = Vec::new();
    for name in names {
        let prefix = format!("{name}/");
        let matched: Vec<JobId> = jobs
            .iter()
            .filter(|(_, j)| {
                let node = &program.node(j.node).id;
                &*j.key == name || node == name || node.starts_with(&prefix)
            })
            .map(|(i, _)| i)
            .collect();
        if matched.is_empty() {
            return Err(unknown("only", name, &jobs, program));
        }
        stack.extend(matched);
    }
    while let Some(i) = stack.pop() {
        if !keep[i] {
            keep[i] = true;
            stack.extend(jobs[i].needs.iter().copied());
        }
    }
    // The kept jobs, renumbered in order.
    let mut renumbered: PerJob<Option<JobId>> = PerJob::filled(jobs.len(), None);
    let mut next = 0;
    for (i, k) in keep.iter() {
        if *k {
            renumbered[i] = Some(JobId::new(next));
            next += 1;
        }
    }
    Ok(jobs
        .into_values()
        .zip(keep.into_values())
        .filter(|(_, k)| *k)
        .map(|(mut j, _)| {
            // What a kept job needs is kept too.
            j.needs = j.needs.iter().filter_map(|&n| renumbered[n]).collect();
            j
        })
        .collect())
}

/// What `--force` names that is known only at run time.
#[derive(Debug, Default)]
pub(super) struct Forced {
    /// Names that match nothing, now or at run time.
    pub unknown: Vec<String>,
    /// Keys of run-time fan-out instances (`work[x]`), forced when they appear.
    pub later: HashSet<String>,
}

/// Marks the jobs `--force` names (node ids or instance keys; none: all)
/// and everything downstream of them.
pub(super) fn force(jobs: &mut PerJob<Job>, names: &[String], program: &Program) -> Forced {
    let node_id = |j: &Job| program.node(j.node).id.as_str();
    let mut forced: HashSet<JobId> = HashSet::new();
    let mut out = Forced::default();
    if names.is_empty() {
        forced.extend(jobs.ids());
    }
    for name in names {
        let before = forced.len();
        for (i, job) in jobs.iter() {
            if &*job.key == name.as_str() || node_id(job) == name {
                forced.insert(i);
            }
        }
        if forced.len() > before {
            continue;
        }
        let fan_out = name.split_once('[').is_some_and(|(node, _)| {
            jobs.values()
                .any(|j| matches!(j.kind, JobKind::FanOut(_)) && node_id(j) == node)
        });
        if fan_out && name.ends_with(']') {
            out.later.insert(name.clone());
        } else {
            out.unknown.push(name.clone());
        }
    }
    let mut dependents: PerJob<Vec<JobId>> = PerJob::filled(jobs.len(), Vec::new());
    for (i, job) in jobs.iter() {
        for &n in &job.needs {
            dependents[n].push(i);
        }
    }
    let mut queue: Vec<JobId> = forced.iter().copied().collect();
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

/// `--FLAG NAME` names nothing: the nearest node or instance key, or, for
/// `node[..]` of a node that has instances, those instances.
pub(super) fn unknown(
    flag: &'static str,
    name: &str,
    jobs: &PerJob<Job>,
    program: &Program,
) -> ApplyError {
    let nodes = jobs.values().map(|j| program.node(j.node).id.as_str());
    let keys = jobs.values().map(|j| &*j.key);
    let suggestion = crate::diagnostic::did_you_mean(name, nodes.chain(keys)).map(str::to_string);
    let node = name.split('[').next().unwrap_or(name);
    let instances: Vec<&str> = jobs
        .values()
        .filter(|j| program.node(j.node).id == node)
        .map(|j| &*j.key)
        .take(12)
        .collect();
    let suggestion = match suggestion {
        Some(s) => Some(s),
        None if !instances.is_empty() && node != name => Some(instances.join("`, `")),
        None => None,
    };
    ApplyError::UnknownName {
        flag,
        name: name.to_string(),
        suggestion,
    }
}
