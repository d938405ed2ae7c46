//! Owns how an apply reacts to signals (DESIGN §9.14): the first Ctrl-C,
//! SIGTERM or SIGHUP stops gracefully (agents get SIGTERM, then SIGKILL
//! after the grace period), a second Ctrl-C kills at once. Also runs the
//! `[success]` commands, which a stop interrupts too.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::context::{Shared, StopLevel, reached};
use super::process;

/// Which signal stopped the apply.
#[derive(Debug)]
pub struct Listener {
    first: Arc<AtomicI32>,
}

impl Listener {
    /// The first stop signal's number, if one came.
    pub fn received(&self) -> Option<i32> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }
}

/// Installs the handlers; they live as long as the runtime.
pub fn listen(stop: Arc<watch::Sender<StopLevel>>) -> std::io::Result<Listener> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let first = Arc::new(AtomicI32::new(0));
    let seen = Arc::clone(&first);
    tokio::spawn(async move {
        loop {
            let n = tokio::select! {
                Some(()) = int.recv() => 2,
                Some(()) = term.recv() => 15,
                Some(()) = hup.recv() => 1,
                else => break,
            };
            let again = seen
                .compare_exchange(0, n, Ordering::SeqCst, Ordering::SeqCst)
                .is_err();
            let level = if again {
                StopLevel::Now
            } else {
                StopLevel::Graceful
            };
            if !again {
                eprintln!(
                    "conductor: stopping (agents get SIGTERM; press Ctrl-C again to kill them now)"
                );
            }
            stop.send_if_modified(|l| {
                if *l < level {
                    *l = level;
                    true
                } else {
                    false
                }
            });
        }
    });
    Ok(Listener { first })
}

/// Runs one `[success]` command with `sh -c` in `workdir`, its output on
/// conductor's stderr (stdout is for machine output); returns its exit code.
pub async fn run_success(command: &str, workdir: &Path, shared: &Shared) -> i32 {
    use std::os::fd::AsFd;
    let out = || {
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
    };
    let (Ok(stdin), Ok(stdout), Ok(stderr)) = (std::fs::File::open("/dev/null"), out(), out())
    else {
        return -1;
    };
    let env: Vec<(String, String)> = shared
        .base_env
        .iter()
        .filter(|(k, _)| k != "PATH")
        .cloned()
        .chain(std::iter::once((
            "PATH".to_string(),
            shared.agent_path.clone(),
        )))
        .collect();
    let streams = process::Stdio3 {
        stdin,
        stdout,
        stderr,
    };
    let mut child = match process::spawn(
        Path::new("/bin/sh"),
        &["-c".to_string(), command.to_string()],
        workdir,
        &env,
        streams,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("conductor: cannot run `{command}`: {e}");
            return -1;
        }
    };
    shared.watch_group(child.pid, child.start_ticks);
    let stop = reached(shared.stop.clone(), StopLevel::Graceful);
    let status = tokio::select! {
        s = child.child.wait() => s,
        () = stop => {
            let now = reached(shared.stop.clone(), StopLevel::Now);
            process::stop(&mut child, shared.grace, now).await
        }
    };
    process::sweep(&child);
    shared.release_group(child.pid);
    status.map_or(-1, process::exit_code)
}
