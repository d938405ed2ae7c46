//! Owns what `--only` and `--force` select. `--only`: the instances named
//! (by instance key or node id, a sub-workflow id selecting its inner
//! nodes) and everything they need, re-indexed. `--force`: the instances
//! named and everything downstream of them, run-time instances included
//! when they appear. A name that matches nothing is an invalid invocation.

use std::collections::HashSet;

use super::error::ApplyError;
use super::job::{Job, JobKind};
use crate::compile::Program;

pub fn only(jobs: Vec<Job>, names: &[String], program: &Program) -> Result<Vec<Job>, ApplyError> {
    if names.is_empty() {
        return Ok(jobs);
    }
    let mut keep = vec![false; jobs.len()];
    let mut stack = Vec::new();
    for name in names {
        let prefix = format!("{name}/");
        let matched: Vec<usize> = jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| {
                let node = &program.nodes[j.node].id;
                &*j.key == name || node == name || node.starts_with(&prefix)
            })
            .map(|(i, _)| i)
            .collect();
        if matched.is_empty() {
            let known = jobs.iter().map(|j| program.nodes[j.node].id.as_str());
            return Err(ApplyError::UnknownName {
                flag: "only",
                name: name.clone(),
                suggestion: crate::diagnostic::did_you_mean(name, known).map(str::to_string),
            });
        }
        stack.extend(matched);
    }
    while let Some(i) = stack.pop() {
        if !keep[i] {
            keep[i] = true;
            stack.extend(jobs[i].needs.iter().copied());
        }
    }
    let mut new_index = vec![usize::MAX; jobs.len()];
    let mut next = 0;
    for (i, k) in keep.iter().enumerate() {
        if *k {
            new_index[i] = next;
            next += 1;
        }
    }
    Ok(jobs
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(mut j, _)| {
            j.needs = j.needs.iter().map(|n| new_index[*n]).collect();
            j
        })
        .collect())
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
