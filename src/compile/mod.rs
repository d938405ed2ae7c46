//! Owns the third stage of the front end: from the entry file's model to one
//! [`Program`]. It loads sub-workflows (refusing recursion), resolves params
//! and `--set`, merges defaults, resolves `needs` and agents, checks templates
//! statically, and orders the nodes. Every problem becomes a diagnostic; the
//! stage goes on after one so that a user sees them all.

mod builder;
mod graph;
mod load;
mod locate;
mod node;
mod params;
mod program;
mod templates;

use std::path::{Path, PathBuf};

pub(crate) use locate::Locator;
pub(crate) use templates::env_json;

pub use program::{
    Action, DEFAULT_MAX_ITEMS, DEFAULT_MAX_ITERATIONS, DEFAULT_TIMEOUT_MS, Group, Node, Program,
    Scope,
};

use crate::diagnostic::Diagnostics;
use crate::source::{Sources, Syntax};

/// The outcome of a compile: the program when nothing is wrong, and every
/// diagnostic (warnings included) either way.
#[derive(Debug)]
pub struct Compilation {
    pub sources: Sources,
    pub diagnostics: Diagnostics,
    pub program: Option<Program>,
}

/// Compiles the workflow at `entry` with `--set` values (`name=value`).
pub fn compile(entry: &Path, sets: &[String]) -> Compilation {
    compile_with(entry, None, sets)
}

/// As [`compile`], with the entry file's text given rather than read from
/// `entry` (whose extension still picks the syntax and whose folder is where
/// its sub-workflows and templates are found).
pub fn compile_text(entry: &Path, text: String, sets: &[String]) -> Compilation {
    compile_with(entry, Some(text), sets)
}

fn compile_with(entry: &Path, text: Option<String>, sets: &[String]) -> Compilation {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut sources = Sources::new();
    let mut diagnostics = Diagnostics::new();
    let line: Vec<String> = sets.iter().map(|s| format!("--set {s}")).collect();
    let line_file = sources.add(
        PathBuf::new(),
        "<command line>".to_string(),
        line.join(" "),
        Syntax::Text,
    );
    let given = params::parse_sets(sets, line_file, &cwd, &mut diagnostics);
    let abs = crate::paths::normalize(&cwd.join(entry));
    if let (Some(text), Some(syntax)) = (text, Syntax::from_path(&abs)) {
        let name = crate::source::display_name(&abs);
        sources.add(abs.clone(), name, text, syntax);
    }
    let mut b = builder::Builder::new(sources, diagnostics);
    let program = b.entry(&abs, &given);
    let (sources, mut diagnostics) = b.finish();
    diagnostics.sort();
    let program = program.filter(|_| !diagnostics.has_errors());
    Compilation {
        sources,
        diagnostics,
        program,
    }
}
