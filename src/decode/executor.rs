//! Reads `[executor]` and a node's `executor` (docs/distributed.md).

use super::read::{Cx, Fields};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Executor, ExecutorKind};
use crate::syntax::{Key, Value};

/// `top`: the workflow's `[executor]`, the only place `kind` is read.
pub(crate) fn decode_executor(
    cx: &mut Cx<'_>,
    key: &Key,
    value: &Value,
    top: bool,
) -> Option<Executor> {
    let table = cx.table(key, value)?;
    let mut f = Fields::new(table, "Executor", format!("`{}`", key.spelled));
    let kind = f.get("kind").and_then(|(k, v)| {
        if top {
            cx.choice(k, v, &ExecutorKind::ALL)
        } else {
            cx.diags.push(
                Diagnostic::error(
                    Code::ConflictingKeys,
                    format!("a node's `{}` has no `{}`", key.spelled, k.spelled),
                )
                .label(k.span, "set for the whole workflow")
                .help(format!(
                    "set `{}` in the workflow's `{}`: every instance of an apply runs on one executor",
                    k.spelled,
                    cx.example("[executor]", "executor")
                )),
            );
            None
        }
    });
    let executor = Executor {
        kind,
        partition: f.get("partition").and_then(|(k, v)| cx.string(k, v)),
        account: f.get("account").and_then(|(k, v)| cx.string(k, v)),
        cpus: f.get("cpus").and_then(|(k, v)| cx.count(k, v)),
        mem: f.get("mem").and_then(|(k, v)| {
            let mem = cx.string(k, v)?;
            let digits = mem.value.trim_end_matches(['K', 'M', 'G', 'T']);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                Some(mem)
            } else {
                cx.invalid(
                    v,
                    format!("`{}` is not an amount of memory Slurm reads", mem.value),
                    Some(
                        "write a whole number with K, M, G or T, such as \"512M\" or \"4G\"".into(),
                    ),
                );
                None
            }
        }),
        time: f.get("time").and_then(|(k, v)| cx.duration(k, v)),
        sbatch_args: f
            .get("sbatch_args")
            .and_then(|(k, v)| cx.string_list(k, v))
            .unwrap_or_default(),
    };
    f.finish(cx);
    Some(executor)
}
