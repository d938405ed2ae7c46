//! Owns `--only`: the instances named (by instance key or node id, a
//! sub-workflow id selecting its inner nodes) and everything they need,
//! re-indexed; a name that matches nothing is an invalid invocation.

use super::job::Job;
use crate::compile::Program;

pub fn only(jobs: Vec<Job>, names: &[String], program: &Program) -> Result<Vec<Job>, String> {
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
            let help = crate::diagnostic::did_you_mean(name, known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(format!(
                "--only {name}: no node or instance has that name{help}"
            ));
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
