//! `conductor gc [--dry-run] [--branches] [--repo DIR]`: what the
//! isolation module decides about each worktree and branch of conductor's
//! in a repository, printed one per line, removed or kept with why
//! (docs/isolation.md, "Cleaning up").

use std::io::Write;

use super::args::GcArgs;
use crate::exit_code;
use crate::isolation::gc::{GcOptions, collect};

pub(super) fn gc(args: &GcArgs) -> u8 {
    let dir = match &args.repo {
        Some(d) => d.clone(),
        None => std::env::current_dir().unwrap_or_default(),
    };
    let options = GcOptions {
        dry_run: args.dry_run,
        branches: args.branches,
    };
    let decisions = match collect(&dir, options) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            if let crate::isolation::gc::GcError::Base(b) = &e {
                let _ = writeln!(std::io::stderr(), "  help: {}", b.help());
            }
            return exit_code::ENVIRONMENT;
        }
    };
    let mut out = std::io::stdout().lock();
    if decisions.is_empty() && !args.json {
        let _ = writeln!(out, "nothing of conductor's in this repository");
    }
    for d in &decisions {
        if args.json {
            let _ = writeln!(out, "{}", serde_json::to_string(d).unwrap_or_default());
            continue;
        }
        let verb = match (d.removed, args.dry_run) {
            (true, false) => "removed",
            (true, true) => "would remove",
            (false, _) => "kept",
        };
        let _ = writeln!(out, "{verb:<12}  {}  ({})", d.what, d.why);
    }
    exit_code::OK
}
