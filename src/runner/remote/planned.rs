//! Owns what `conductor plan --executor slurm` shows: for each agent
//! instance, the `sbatch` command an apply would run to submit it, built by
//! the code that submits it (docs/distributed.md).

use std::path::{Path, PathBuf};

use super::sbatch::{self, Submission};
use crate::compile::{NodeId, Program};
use crate::plan::{InstanceKind, Plan};

/// The plan's instances that run as units (agent instances, and a
/// run-time fan-out's standing for its items), with their program nodes.
pub(super) fn units<'p>(
    program: &'p Program,
    plan: &'p Plan,
) -> impl Iterator<Item = (&'p crate::plan::Instance, NodeId)> + 'p {
    plan.instances
        .iter()
        .filter(|i| {
            matches!(
                i.kind,
                InstanceKind::Agent { .. } | InstanceKind::FanOut { .. }
            )
        })
        .filter_map(|inst| {
            let node = program
                .node_ids()
                .find(|n| *program.node(*n).id == *inst.node)?;
            Some((inst, node))
        })
}

/// `words` as a shell reads them: quoted where they must be.
pub(crate) fn shell_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=./:%,@+".contains(c));
            if plain { w.clone() } else { sbatch::quote(w) }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each agent instance's key and the `sbatch` command (its words) that
/// would submit it; `extra` are `--sbatch-arg`s. Its task folder is named
/// when the apply starts: shown as `<task>`.
pub(crate) fn submissions(
    program: &Program,
    plan: &Plan,
    extra: &[String],
) -> Vec<(String, Vec<String>)> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("conductor"));
    let task = Path::new("<task>");
    units(program, plan)
        .map(|(inst, node)| {
            let mut asked = program.sbatch_args(node);
            asked.extend(extra.iter().cloned());
            let workdir = crate::paths::normalize(&program.entry_dir().join(&*inst.workdir));
            let argv = sbatch::arguments(&Submission {
                name: &format!("conductor:{}", inst.key),
                exe: &exe,
                spec: &task.join("unit.json"),
                workdir: &workdir,
                output: task.join("slurm-%j.out"),
                extra: &asked,
                env: Vec::new(),
            });
            let words = std::iter::once("sbatch".to_string()).chain(argv).collect();
            (inst.key.to_string(), words)
        })
        .collect()
}
