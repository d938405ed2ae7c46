//! `conductor apply`: compile and plan (exit 2 on any error, nothing runs),
//! run, report (console, `--json`, `--junit`), and map the outcome to the
//! exit code.

use std::io::{IsTerminal, Write};

use super::args::ApplyArgs;
use super::render;
use crate::exit_code;
use crate::load::{LoadOptions, Loaded, load};
use crate::report::{Console, write_junit};
use crate::runner::{self, ApplyOptions};

pub(super) fn apply(args: &ApplyArgs) -> u8 {
    let launch = runner::session::launch_keeper(args.run.containment);
    let load = load(
        &args.run.file,
        &args.run.sets,
        LoadOptions {
            root: args.run.root.as_deref(),
            ..LoadOptions::default()
        },
    );
    render::print_all(&load.diagnostics, &load.sources);
    let Some(Loaded { program, plan, .. }) = load.into_loaded() else {
        return exit_code::INVALID;
    };
    let options = ApplyOptions {
        fail_fast: args.fail_fast,
        force: args.force.clone(),
        ..args.run.options(&program)
    };
    // The page, while the apply runs; it stops with the apply.
    let _ui = match &args.run.ui {
        Some(addr) => {
            let root =
                crate::store::layout::runs_root(args.run.root.as_deref(), program.declared_root());
            match super::serve::ui(addr, &root) {
                Ok(s) => Some(s),
                Err(code) => return code,
            }
        }
        None => None,
    };
    let mut console = Console::new(std::io::stderr().is_terminal());
    let summary = match runner::apply(program, &plan, &options, &mut console, launch) {
        Ok(s) => s,
        Err(e) => return render::apply_error(&e),
    };
    console.finish(&summary);
    if let Some(path) = &args.junit
        && let Err(e) = write_junit(&summary, path)
    {
        let _ = writeln!(
            std::io::stderr(),
            "error: cannot write {}: {e}",
            path.display()
        );
        return exit_code::ENVIRONMENT;
    }
    if args.json {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        let _ = writeln!(std::io::stdout(), "{text}");
    }
    summary.exit_code
}
