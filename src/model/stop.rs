//! The `stop` table: the success conditions and limits of a node's Ralph loop.

use schemars::JsonSchema;

use super::{Duration, Spanned};

/// When a node's loop ends. Success conditions (any of them, or every one with
/// `all = true`) mark the node done; hitting a limit marks it failed.
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Stop {
    /// Done when the agent created `DONE` in its task folder.
    pub done_file: Option<Spanned<bool>>,
    /// Done when the final answer contains this text.
    pub promise: Option<Spanned<String>>,
    /// Done when the final answer matches this regular expression.
    pub output_matches: Option<Spanned<String>>,
    /// Done when this shell command exits 0 in the workdir.
    pub command: Option<Spanned<String>>,
    /// Done when this minijinja expression is true (over `output`, `json`, `iteration`, ...).
    pub expr: Option<Spanned<String>>,
    /// Done when the agent exited 0.
    pub exit_zero: Option<Spanned<bool>>,
    /// Require every success condition written, not any one.
    pub all: Option<Spanned<bool>>,
    /// Fail after this many iterations (default 10).
    pub max_iterations: Option<Spanned<u32>>,
    /// Fail an iteration that runs longer than this (default `1h`).
    pub timeout: Option<Spanned<Duration>>,
    /// Fail an iteration that prints nothing for this long.
    pub idle_timeout: Option<Spanned<Duration>>,
    /// Fail the node when all its iterations together run longer than this.
    pub deadline: Option<Spanned<Duration>>,
    /// Fail the node when its agents report more cost than this, in US dollars.
    pub budget_usd: Option<Spanned<f64>>,
    /// Fail the node when its agents report more tokens than this.
    pub budget_tokens: Option<Spanned<u64>>,
    /// Fail after this many iterations in a row that changed neither the workdir nor the answer.
    pub stall: Option<Spanned<u32>>,
}

impl Stop {
    /// Is any success condition written?
    pub fn has_success_condition(&self) -> bool {
        self.done_file.is_some()
            || self.promise.is_some()
            || self.output_matches.is_some()
            || self.command.is_some()
            || self.expr.is_some()
            || self.exit_zero.is_some()
    }

    /// Key by key: a key set in `self` wins over `base`.
    #[must_use]
    pub fn merged_over(&self, base: &Self) -> Self {
        fn pick<T: Clone>(a: Option<&T>, b: Option<&T>) -> Option<T> {
            a.or(b).cloned()
        }
        Self {
            done_file: pick(self.done_file.as_ref(), base.done_file.as_ref()),
            promise: pick(self.promise.as_ref(), base.promise.as_ref()),
            output_matches: pick(self.output_matches.as_ref(), base.output_matches.as_ref()),
            command: pick(self.command.as_ref(), base.command.as_ref()),
            expr: pick(self.expr.as_ref(), base.expr.as_ref()),
            exit_zero: pick(self.exit_zero.as_ref(), base.exit_zero.as_ref()),
            all: pick(self.all.as_ref(), base.all.as_ref()),
            max_iterations: pick(self.max_iterations.as_ref(), base.max_iterations.as_ref()),
            timeout: pick(self.timeout.as_ref(), base.timeout.as_ref()),
            idle_timeout: pick(self.idle_timeout.as_ref(), base.idle_timeout.as_ref()),
            deadline: pick(self.deadline.as_ref(), base.deadline.as_ref()),
            budget_usd: pick(self.budget_usd.as_ref(), base.budget_usd.as_ref()),
            budget_tokens: pick(self.budget_tokens.as_ref(), base.budget_tokens.as_ref()),
            stall: pick(self.stall.as_ref(), base.stall.as_ref()),
        }
    }
}
