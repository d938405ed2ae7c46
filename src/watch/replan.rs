//! Owns the re-planning thread of `conductor watch`: it waits for bursts of
//! file changes that count, reloads the workflow, builds and fingerprints
//! the jobs, and hands each new plan to the apply that runs (or to the
//! next one). A burst that only touches inputs while agents are running is
//! their own work and re-plans nothing; a workflow that no longer loads
//! leaves the last good plan in force. What the user should know is told
//! to the command line as a [`Notice`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc::UnboundedSender;

use super::files::{WatchSet, Watcher};
use crate::incremental::inputs::InputHasher;
use crate::load::{LoadOptions, Loaded, load};
use crate::runner::edits::LastPlan;
use crate::runner::prepare::{Prepared, Preparer};
use crate::runner::{ApplyError, Control};
use crate::source::Sources;

/// Past this many files edited since the last plan, planning afresh
/// costs less than matching each against every job's `inputs`.
const MOST_EDITS: usize = 256;

/// What the re-planning thread has to say; the command line shows it.
#[derive(Debug)]
pub(crate) enum Notice<'a> {
    /// Files cannot be watched at all: the watch goes on without re-plans.
    CannotWatch(notify::Error),
    /// A burst of input edits while agents run, taken as their own work
    /// (said once per apply).
    AgentsEdits { why: String },
    /// What loading the edited workflow found (warnings, or the errors
    /// that a `DoesNotLoad` follows).
    Diagnostics {
        diagnostics: &'a [crate::diagnostic::Diagnostic],
        sources: &'a Sources,
    },
    /// The workflow no longer compiles or plans: the last good plan stays.
    DoesNotLoad { why: String },
    /// The new plan cannot run (an unknown `--only`, a missing agent): the
    /// last good plan stays.
    Refused { why: String, error: ApplyError },
}

/// The files a loaded workflow is watched through.
pub(crate) fn watch_set(loaded: &Loaded, prepared: &Prepared, runs_root: &Path) -> WatchSet {
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
    let mut inputs: Vec<(PathBuf, Vec<String>)> = prepared
        .jobs
        .values()
        .filter(|j| !j.inputs.is_empty())
        .map(|j| (j.workdir.clone(), j.inputs.clone()))
        .collect();
    // A file a `for_each` glob finds, new or deleted, changes the plan
    // (a glob that finds nothing yet too).
    inputs.extend(
        loaded
            .plan
            .globs
            .iter()
            .map(|(base, pattern)| (base.clone(), vec![pattern.clone()])),
    );
    WatchSet::new(definition, &inputs, runs_root)
}

/// What the re-planning thread shares with the session.
#[derive(Debug)]
pub(crate) struct Replanner {
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
    /// The last plan handed on, re-fingerprinted when only input files
    /// are edited.
    pub last: Option<LastPlan>,
}

impl Replanner {
    /// Runs until `stop`: each burst that counts becomes a
    /// `Control::Replan`; `notice` is told what the user should know.
    pub(crate) fn run(
        self,
        mut set: WatchSet,
        control: &UnboundedSender<Control>,
        notice: &mut dyn FnMut(Notice<'_>),
    ) {
        let mut watcher = match Watcher::new() {
            Ok(w) => w,
            Err(e) => {
                notice(Notice::CannotWatch(e));
                return;
            }
        };
        watcher.follow(&set);
        let mut inputs = self.inputs;
        let mut last = self.last;
        // What was written since the last plan was handed on, and whether
        // all of it was edits of files read before (`InputHasher::forget_edits`).
        let mut edited: std::collections::BTreeSet<PathBuf> = std::collections::BTreeSet::new();
        let mut edits_only = true;
        let cwd = std::env::current_dir().unwrap_or_default();
        let base =
            crate::paths::normalize(&cwd.join(self.file.parent().unwrap_or_else(|| Path::new(""))));
        let mut told = u64::MAX;
        let stop = Arc::clone(&self.stop);
        while let Some(burst) = watcher.next_burst(&set, &|| stop.load(Ordering::SeqCst)) {
            let paths: Vec<PathBuf> = burst.files.iter().map(|(p, _)| p.clone()).collect();
            edits_only &= inputs.forget_edits(&paths);
            edited.extend(paths);
            let why = burst.describe(&base);
            if !burst.has_definition() && self.active.load(Ordering::SeqCst) {
                let apply = self.applies.load(Ordering::SeqCst);
                if told != apply {
                    told = apply;
                    notice(Notice::AgentsEdits { why });
                }
                continue;
            }
            if edits_only && !burst.has_definition() && edited.len() <= MOST_EDITS {
                let files: Vec<PathBuf> = edited.iter().cloned().collect();
                if let Some(replan) = last
                    .as_mut()
                    .and_then(|l| l.after_edits(&files, &mut inputs, why.clone()))
                {
                    edited.clear();
                    if control.send(replan).is_err() {
                        return;
                    }
                    continue;
                }
            }
            let load = load(
                &self.file,
                &self.sets,
                LoadOptions {
                    root: self.root_flag.as_deref(),
                    ..LoadOptions::default()
                },
            );
            if !load.diagnostics.is_empty() {
                notice(Notice::Diagnostics {
                    diagnostics: &load.diagnostics,
                    sources: &load.sources,
                });
            }
            if load.has_errors() {
                notice(Notice::DoesNotLoad { why });
                // Until a plan is handed on, the last one is not re-used.
                edits_only = false;
                continue;
            }
            let Some(loaded) = load.into_loaded() else {
                continue;
            };
            match self
                .preparer
                .prepare(&loaded.program, &loaded.plan, &mut inputs)
            {
                Ok(prepared) => {
                    set = watch_set(&loaded, &prepared, &self.runs_root);
                    watcher.follow(&set);
                    let program = Arc::new(loaded.program);
                    let success = Arc::new(loaded.plan.success);
                    last = Some(LastPlan::new(
                        Arc::clone(&program),
                        Arc::clone(&success),
                        &prepared.jobs,
                    ));
                    edited.clear();
                    edits_only = true;
                    let handed = control.send(Control::Replan {
                        jobs: prepared.jobs,
                        program,
                        success,
                        why,
                    });
                    if handed.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    edits_only = false;
                    notice(Notice::Refused { why, error });
                }
            }
        }
    }
}
