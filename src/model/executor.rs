//! The `[executor]` table and a node's `executor`: where instances' loops
//! run, and what each Slurm job asks for (docs/distributed.md).

use schemars::JsonSchema;
use serde::Serialize;

use super::{Duration, Spanned};

/// Where instances run: `local` (the default) or `slurm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// As processes of the `conductor apply` that runs them.
    Local,
    /// Each instance's whole loop as a Slurm job.
    Slurm,
}

impl ExecutorKind {
    pub const ALL: [(&'static str, Self); 2] = [("local", Self::Local), ("slurm", Self::Slurm)];
}

/// `[executor]`, or a node's `executor` (which has no `kind`).
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Executor {
    /// `local` (the default) or `slurm`; `--executor` overrides it. Only in `[executor]` of the file applied.
    pub kind: Option<Spanned<ExecutorKind>>,
    /// The Slurm partition (`sbatch --partition`).
    pub partition: Option<Spanned<String>>,
    /// The Slurm account charged (`sbatch --account`).
    pub account: Option<Spanned<String>>,
    /// CPUs for each instance's job (`sbatch --cpus-per-task`).
    pub cpus: Option<Spanned<u32>>,
    /// Memory for each instance's job, as Slurm writes it: `512M`, `4G` (`sbatch --mem`).
    pub mem: Option<Spanned<String>>,
    /// The job's time limit, such as "2h" (`sbatch --time`); Slurm ends a job that runs past it.
    pub time: Option<Spanned<Duration>>,
    /// More `sbatch` arguments, such as `["--qos=high"]`, after the ones above.
    #[serde(default)]
    pub sbatch_args: Vec<Spanned<String>>,
}

impl Executor {
    /// These settings (the workflow's) with `over` (a node's) winning key
    /// by key; the extra arguments of both, the workflow's first.
    pub(crate) fn with(&self, over: Option<&Self>) -> Self {
        let Some(o) = over else {
            return self.clone();
        };
        Self {
            kind: self.kind.clone(),
            partition: o.partition.clone().or_else(|| self.partition.clone()),
            account: o.account.clone().or_else(|| self.account.clone()),
            cpus: o.cpus.clone().or_else(|| self.cpus.clone()),
            mem: o.mem.clone().or_else(|| self.mem.clone()),
            time: o.time.clone().or_else(|| self.time.clone()),
            sbatch_args: self
                .sbatch_args
                .iter()
                .chain(&o.sbatch_args)
                .cloned()
                .collect(),
        }
    }

    /// `sbatch` arguments for these settings, `over` (a node's) winning
    /// over `self` (the workflow's), as [`Self::with`] says.
    pub(crate) fn sbatch_args(&self, over: Option<&Self>) -> Vec<String> {
        let e = self.with(over);
        let mut args = Vec::new();
        if let Some(p) = &e.partition {
            args.push(format!("--partition={}", p.value));
        }
        if let Some(a) = &e.account {
            args.push(format!("--account={}", a.value));
        }
        if let Some(c) = &e.cpus {
            args.push(format!("--cpus-per-task={}", c.value));
        }
        if let Some(m) = &e.mem {
            args.push(format!("--mem={}", m.value));
        }
        if let Some(t) = &e.time {
            args.push(format!("--time={}", minutes(t.value)));
        }
        args.extend(e.sbatch_args.into_iter().map(|a| a.value));
        args
    }
}

/// A duration as Slurm's whole minutes, rounded up (Slurm's `--time=M`).
fn minutes(d: Duration) -> String {
    d.millis.div_ceil(60_000).max(1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileId, Span};

    fn s<T>(v: T) -> Spanned<T> {
        Spanned::new(v, Span::new(FileId(0), 0..0))
    }

    #[test]
    fn a_nodes_settings_win_key_by_key_and_extra_arguments_add_up() {
        let wf = Executor {
            partition: Some(s("batch".to_string())),
            cpus: Some(s(2)),
            time: Some(s(Duration { millis: 90_001 })),
            sbatch_args: vec![s("--qos=low".to_string())],
            ..Executor::default()
        };
        assert_eq!(
            wf.sbatch_args(None),
            [
                "--partition=batch",
                "--cpus-per-task=2",
                "--time=2",
                "--qos=low"
            ]
        );
        let node = Executor {
            cpus: Some(s(8)),
            mem: Some(s("32G".to_string())),
            sbatch_args: vec![s("--gres=gpu:1".to_string())],
            ..Executor::default()
        };
        assert_eq!(
            wf.sbatch_args(Some(&node)),
            [
                "--partition=batch",
                "--cpus-per-task=8",
                "--mem=32G",
                "--time=2",
                "--qos=low",
                "--gres=gpu:1"
            ]
        );
    }
}
