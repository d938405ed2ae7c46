//! Owns how an apply reacts to signals (docs/exit-codes.md): the first Ctrl-C,
//! SIGTERM or SIGHUP stops gracefully (agents get SIGTERM, then SIGKILL
//! after the grace period), a second Ctrl-C kills at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::supervisor::StopLevel;

/// Which signal stopped the apply.
#[derive(Debug)]
pub(crate) struct Listener {
    first: Arc<AtomicI32>,
}

impl Listener {
    /// The first stop signal's number, if one came.
    pub(crate) fn received(&self) -> Option<i32> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }
}

/// Installs the handlers; they live as long as the runtime.
pub(crate) fn listen(stop: Arc<watch::Sender<StopLevel>>) -> std::io::Result<Listener> {
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
