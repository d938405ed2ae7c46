//! Owns loading a workflow for a command: compile it, then plan it against
//! its runs root (so that globs never walk the store), keeping every
//! diagnostic of both stages, warnings included, for the caller to show.
//! `apply`, `plan`, `validate` and `watch` load through here, and `status`
//! and `logs` compile through here, so a file means the same thing to each
//! of them.

use std::path::Path;

use crate::compile::{Program, compile};
use crate::diagnostic::Diagnostic;
use crate::plan::{self, Plan, PlanOptions};
use crate::source::Sources;

/// What loading a file gave, whether or not it is valid.
#[derive(Debug)]
pub(crate) struct Load {
    pub sources: Sources,
    /// Every diagnostic of both stages, in order.
    pub diagnostics: Vec<Diagnostic>,
    /// The program, when it compiled.
    pub program: Option<Program>,
    /// The plan, when the program planned without an error.
    pub plan: Option<Plan>,
}

/// A workflow that compiled and planned without an error.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub program: Program,
    pub plan: Plan,
    pub sources: Sources,
}

/// How to load.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LoadOptions<'a> {
    /// `--root`, as given.
    pub root: Option<&'a Path>,
    /// Render every instance's first prompt into the plan.
    pub show_prompts: bool,
}

impl Load {
    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The program and its plan, when nothing is wrong.
    pub(crate) fn into_loaded(self) -> Option<Loaded> {
        if self.has_errors() {
            return None;
        }
        Some(Loaded {
            program: self.program?,
            plan: self.plan?,
            sources: self.sources,
        })
    }
}

/// Compiles and plans `file` with `--set` values.
pub(crate) fn load(file: &Path, sets: &[String], options: LoadOptions<'_>) -> Load {
    let mut c = compile(file, sets);
    let mut diagnostics: Vec<Diagnostic> = std::mem::take(&mut c.diagnostics).into_vec();
    let plan = c.program.as_ref().map(|program| {
        let plan_options = PlanOptions {
            show_prompts: options.show_prompts,
            runs_root: Some(crate::store::layout::runs_root(
                options.root,
                program.declared_root(),
            )),
        };
        let (plan, more) = plan::plan(program, &mut c.sources, plan_options);
        diagnostics.extend(more.into_vec());
        plan
    });
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    Load {
        sources: c.sources,
        diagnostics,
        program: c.program,
        plan: plan.filter(|_| !failed),
    }
}

/// Compiles `file` only, for a command that needs to know which workflow
/// it names and where its runs are (`status`, `logs`), not what it would
/// run: `None` when it does not compile.
pub(crate) fn program(file: &Path) -> Option<Program> {
    let c = compile(file, &[]);
    // A param that must be given (none is, here) does not change which
    // workflow this is or where its runs are.
    let only_params = c
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .all(|d| d.code == crate::diagnostic::Code::ParamType);
    if !only_params {
        return None;
    }
    c.program.or(c.partial)
}
