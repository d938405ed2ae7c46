//! Owns compiling a workflow from its entry file: the `--set` values read
//! as a file of their own (so their diagnostics point into the command
//! line), the entry file read or given as text, and the builder run over it
//! and its sub-workflows, every diagnostic sorted.

use std::path::{Path, PathBuf};

use super::program::Program;
use super::{builder, params};
use crate::diagnostic::Diagnostics;
use crate::source::{Sources, Syntax};

/// The outcome of a compile: the program when nothing is wrong, and every
/// diagnostic (warnings included) either way.
#[derive(Debug)]
pub struct Compilation {
    pub sources: Sources,
    pub diagnostics: Diagnostics,
    pub program: Option<Program>,
    /// The program even when something is wrong, as far as it was built:
    /// enough to say which workflow a file is (`status`, `logs`).
    pub(crate) partial: Option<Program>,
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
    let (program, partial) = if diagnostics.has_errors() {
        (None, program)
    } else {
        (program, None)
    };
    Compilation {
        sources,
        diagnostics,
        program,
        partial,
    }
}
