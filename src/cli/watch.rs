//! `conductor watch`: apply a workflow, then keep it applied. A thread
//! re-plans on every burst of file changes that counts (`crate::watch`);
//! a running apply takes the new plan in flight, an idle watch starts the
//! next apply with it. One live console spans every apply; Ctrl-C stops
//! the running agents and ends the watch with 130 (SIGTERM: 143).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::args::WatchArgs;
use super::render;
use crate::exit_code;
use crate::incremental::inputs::InputHasher;
use crate::load::{LoadOptions, Loaded, load};
use crate::report::Console;
use crate::runner::edits::LastPlan;
use crate::runner::{Control, session::Session};
use crate::watch::{Notice, Replanner, watch_set};

pub(super) fn watch(args: &WatchArgs) -> u8 {
    let args = &args.run;
    let launch = crate::runner::session::launch_keeper(args.containment);
    let load = load(
        &args.file,
        &args.sets,
        LoadOptions {
            root: args.root.as_deref(),
            ..LoadOptions::default()
        },
    );
    render::print_all(&load.diagnostics, &load.sources);
    let Some(first) = load.into_loaded() else {
        return exit_code::INVALID;
    };
    let options = args.options(&first.program);
    let mut console = Console::new(std::io::stderr().is_terminal());
    let mut session = match Session::open(&first.program, &options, &mut console, launch) {
        Ok(s) => s,
        Err(e) => return render::apply_error(&e),
    };
    let _ui = match &args.ui {
        Some(addr) => match super::serve::ui(addr, &session.root) {
            Ok(s) => Some(s),
            Err(code) => {
                session.close();
                return code;
            }
        },
        None => None,
    };
    let mut inputs = InputHasher::new(session.root.clone());
    let prepared = match session.preparer().prepare_telling(
        &first.program,
        &first.plan,
        &mut inputs,
        &mut |programs| {
            crate::runner::Observer::event(
                &mut console,
                &crate::runner::event::Event::AskingVersions {
                    programs: programs.to_vec(),
                },
            );
        },
    ) {
        Ok(p) => p,
        Err(e) => {
            session.close();
            return render::apply_error(&e);
        }
    };
    let set = watch_set(&first, &prepared, &session.root);
    let Loaded { program, plan, .. } = first;
    let (program, success) = (Arc::new(program), Arc::new(plan.success));
    let last = LastPlan::new(Arc::clone(&program), Arc::clone(&success), &prepared.jobs);
    let (control_tx, mut control_rx) = tokio::sync::mpsc::unbounded_channel();
    let active = Arc::new(AtomicBool::new(true));
    let applies = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let replanner = Replanner {
        file: args.file.clone(),
        sets: args.sets.clone(),
        root_flag: args.root.clone(),
        preparer: session.preparer(),
        runs_root: session.root.clone(),
        active: Arc::clone(&active),
        applies: Arc::clone(&applies),
        stop: Arc::clone(&stop),
        inputs,
        last: Some(last),
    };
    std::thread::spawn(move || replanner.run(set, &control_tx, &mut show));

    let mut next = Some((program, success, prepared, None));
    let mut code = exit_code::OK;
    while let Some((program, success, prepared, why)) = next.take() {
        active.store(true, Ordering::SeqCst);
        applies.fetch_add(1, Ordering::SeqCst);
        let ran = session.run(
            program,
            success,
            prepared,
            &mut console,
            Some(&mut control_rx),
            why,
        );
        active.store(false, Ordering::SeqCst);
        match ran {
            Ok(summary) => {
                console.brief(&summary);
                code = summary.exit_code;
            }
            Err(e) => code = render::apply_error(&e),
        }
        if session.stopping() {
            break;
        }
        console.note("conductor: watching for changes (Ctrl-C to stop)");
        if let Some(Control::Replan {
            jobs,
            program,
            success,
            why,
        }) = session.wait_control(&mut control_rx)
        {
            let prepared = crate::runner::prepare::Prepared {
                jobs,
                forced_later: std::collections::HashSet::new(),
            };
            next = Some((program, success, prepared, Some(why)));
        }
    }
    stop.store(true, Ordering::SeqCst);
    console.close();
    let signal = session.signal();
    session.close();
    match signal {
        Some(15) => exit_code::TERMINATED,
        Some(_) => exit_code::INTERRUPTED,
        None => code,
    }
}

/// Shows what the re-planning thread says, on stderr.
fn show(notice: Notice<'_>) {
    match notice {
        Notice::CannotWatch(e) => eprintln!("conductor: cannot watch files: {e}"),
        Notice::AgentsEdits { why } => eprintln!(
            "conductor: {why} while agents run: taken as their work, not re-run (docs/watch.md)"
        ),
        Notice::Diagnostics {
            diagnostics,
            sources,
        } => render::print_all(diagnostics, sources),
        Notice::DoesNotLoad { why } => eprintln!(
            "conductor: {why}, but the workflow does not compile: the last good plan stays in force"
        ),
        Notice::Refused { why, error } => {
            let help = error
                .help()
                .map(|h| format!("\n  help: {h}"))
                .unwrap_or_default();
            eprintln!(
                "conductor: {why}: {error}{help}\nconductor: the last good plan stays in force"
            );
        }
    }
}
