//! Owns `conductor watch`'s re-planning (DESIGN §3, docs/watch.md): a
//! thread that waits for file bursts, recompiles the workflow, builds and
//! fingerprints the jobs, and hands the new plan to the apply that runs (or
//! to the next one). A burst that only touches inputs while agents are
//! running is their own work and re-plans nothing; a workflow that no
//! longer compiles prints its diagnostics and leaves the last good plan in
//! force.

pub mod files;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc::UnboundedSender;

use crate::compile::{Program, compile};
use crate::diagnostic::Diagnostic;
use crate::incremental::inputs::InputHasher;
use crate::plan::{self, Plan, PlanOptions};
use crate::runner::prepare::{Prepared, Preparer};
use crate::runner::{ApplyError, Control};
use crate::source::Sources;
use files::{WatchSet, Watcher};

/// A workflow that compiled and planned.
#[derive(Debug)]
pub struct Loaded {
    pub program: Program,
    pub plan: Plan,
    pub sources: Sources,
}

/// Compiles and plans `file`; on errors, prints them and returns `None`.
pub fn load(file: &Path, sets: &[String], root: Option<&Path>) -> Result<Loaded, Sources> {
    let mut c = compile(file, sets);
    let mut diags: Vec<Diagnostic> = std::mem::take(&mut c.diagnostics).into_vec();
    let Some(program) = c.program.take() else {
        crate::cli::render::print_all(&diags, &c.sources);
        return Err(c.sources);
    };
    let options = PlanOptions {
        runs_root: Some(crate::runner::runs_root(&program, root)),
        ..PlanOptions::default()
    };
    let (plan, more) = plan::plan(&program, &mut c.sources, options);
    diags.extend(more.into_vec());
    crate::cli::render::print_all(&diags, &c.sources);
    if diags.iter().any(Diagnostic::is_error) {
        return Err(c.sources);
    }
    Ok(Loaded {
        program,
        plan,
        sources: c.sources,
    })
}

/// The files a loaded workflow is watched through.
pub fn watch_set(loaded: &Loaded, prepared: &Prepared, runs_root: &Path) -> WatchSet {
    let mut definition: Vec<PathBuf> = loaded
        .sources
        .files()
        .iter()
        .map(|f| f.path.clone())
        .filter(|p| p.is_file())
        .collect();
    for scope in &loaded.program.scopes {
        definition.extend(scope.library.loaded().into_iter().map(|t| t.path));
    }
    let inputs: Vec<(PathBuf, Vec<String>)> = prepared
        .jobs
        .iter()
        .filter(|j| !j.inputs.is_empty())
        .map(|j| (j.workdir.clone(), j.inputs.clone()))
        .collect();
    WatchSet::new(definition, &inputs, runs_root)
}

/// What the re-planning thread shares with the session.
#[derive(Debug)]
pub struct Replanner {
    pub file: PathBuf,
    pub sets: Vec<String>,
    /// `--root`, as given.
    pub root_flag: Option<PathBuf>,
    pub preparer: Preparer,
    pub runs_root: PathBuf,
    /// Whether an apply is running (its agents' edits are theirs).
    pub active: Arc<AtomicBool>,
    /// Counts applies, so "edits while agents run" is said once per apply.
    pub applies: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
    /// The file hashes the first plan took, so that a re-plan reads only
    /// what changed.
    pub inputs: InputHasher,
}

impl Replanner {
    /// Runs until `stop`: each burst that counts becomes a `Control::Replan`.
    pub fn run(self, mut set: WatchSet, control: &UnboundedSender<Control>) {
        let mut watcher = match Watcher::new() {
            Ok(w) => w,
            Err(e) => {
                eprintln!("conductor: cannot watch files: {e}");
                return;
            }
        };
        watcher.follow(&set);
        let mut inputs = self.inputs;
        let cwd = std::env::current_dir().unwrap_or_default();
        let base =
            crate::paths::normalize(&cwd.join(self.file.parent().unwrap_or_else(|| Path::new(""))));
        let mut told = u64::MAX;
        let stop = Arc::clone(&self.stop);
        while let Some(burst) = watcher.next_burst(&set, &|| stop.load(Ordering::SeqCst)) {
            let paths: Vec<PathBuf> = burst.files.iter().map(|(p, _)| p.clone()).collect();
            inputs.forget(&paths);
            let why = burst.describe(&base);
            if !burst.has_definition() && self.active.load(Ordering::SeqCst) {
                let apply = self.applies.load(Ordering::SeqCst);
                if told != apply {
                    told = apply;
                    eprintln!(
                        "conductor: {why} while agents run: taken as their work, not re-run (docs/watch.md)"
                    );
                }
                continue;
            }
            let Ok(loaded) = load(&self.file, &self.sets, self.root_flag.as_deref()) else {
                eprintln!(
                    "conductor: {why}, but the workflow does not compile: the last good plan stays in force"
                );
                continue;
            };
            match self
                .preparer
                .prepare(&loaded.program, &loaded.plan, &mut inputs)
            {
                Ok(prepared) => {
                    set = watch_set(&loaded, &prepared, &self.runs_root);
                    watcher.follow(&set);
                    let handed = control.send(Control::Replan {
                        jobs: prepared.jobs,
                        program: Arc::new(loaded.program),
                        success: Arc::new(loaded.plan.success),
                        why,
                    });
                    if handed.is_err() {
                        return;
                    }
                }
                Err(ApplyError::Invalid(e) | ApplyError::Environment(e)) => {
                    eprintln!(
                        "conductor: {why}: {e}\nconductor: the last good plan stays in force"
                    );
                }
            }
        }
    }
}
