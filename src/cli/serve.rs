//! `conductor serve`: the web page and HTTP API over a runs root until
//! Ctrl-C; and the page `apply --ui` / `watch --ui` serve while they run.

use std::io::Write;
use std::path::Path;

use super::args::ServeArgs;
use crate::exit_code;
use crate::serve::{ServeError, ServeOptions, Started};

pub(super) fn serve(args: &ServeArgs) -> u8 {
    let token = match &args.token_env {
        Some(name) => match std::env::var(name) {
            Ok(t) if t.len() >= 16 => Some(t),
            _ => {
                let _ = writeln!(
                    std::io::stderr(),
                    "error: --token-env {name}: the variable must hold a token of at least 16 characters\n  help: export {name}=\"$(head -c 24 /dev/urandom | base64)\""
                );
                return exit_code::INVALID;
            }
        },
        None => None,
    };
    let options = ServeOptions {
        bind: args.bind,
        root: absolute(&crate::store::layout::runs_root(args.root.as_deref(), None)),
        workflows: args.workflows.as_deref().map(absolute),
        read_only: args.read_only,
        token,
        token_env: args.token_env.clone(),
    };
    let started = match crate::serve::start(options) {
        Ok(s) => s,
        Err(e) => return failed(&e),
    };
    let _ = writeln!(
        std::io::stderr(),
        "conductor serve: {} (Ctrl-C stops)",
        started.url
    );
    wait_for_signal();
    started.stop();
    exit_code::OK
}

fn failed(e: &ServeError) -> u8 {
    let _ = writeln!(std::io::stderr(), "error: {e}");
    match e {
        ServeError::TokenRequired(_) | ServeError::Workflows(_) => exit_code::INVALID,
        ServeError::Bind { .. } | ServeError::Runtime(_) => exit_code::ENVIRONMENT,
    }
}

fn wait_for_signal() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        let _ = signals.forever().next();
    }
}

/// The page of a running apply (`--ui[=ADDR]`), over its runs root: on
/// ADDR, else the default port, else a free one. Said on stderr.
pub(super) fn ui(addr: &str, root: &Path) -> Result<Started, u8> {
    let options = |bind| ServeOptions {
        bind,
        root: absolute(root),
        workflows: None,
        read_only: false,
        token: None,
        token_env: None,
    };
    let started = if addr.is_empty() {
        let default: std::net::SocketAddr = ([127, 0, 0, 1], 14355).into();
        crate::serve::start(options(default))
            .or_else(|_| crate::serve::start(options(([127, 0, 0, 1], 0).into())))
    } else {
        match addr.parse() {
            Ok(bind) => crate::serve::start(options(bind)),
            Err(_) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "error: --ui={addr}: not an address; give one like 127.0.0.1:14355"
                );
                return Err(exit_code::INVALID);
            }
        }
    };
    match started {
        Ok(s) => {
            let _ = writeln!(
                std::io::stderr(),
                "conductor: the page of this apply is at {}",
                s.url
            );
            Ok(s)
        }
        Err(e) => Err(failed(&e)),
    }
}

/// Applies the server starts run elsewhere: they are given the root whole.
fn absolute(root: &Path) -> std::path::PathBuf {
    std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf())
}
