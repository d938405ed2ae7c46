//! Owns how an apply reacts to signals (docs/exit-codes.md): the first Ctrl-C,
//! SIGTERM or SIGHUP stops gracefully (agents get SIGTERM, then SIGKILL
//! after the grace period), a second Ctrl-C kills at once. The supervisor
//! keeps the level and the first signal; nothing here prints.

use tokio::signal::unix::{SignalKind, signal};

use super::supervisor::Supervisor;

/// Installs the handlers; they live as long as the runtime they are
/// installed on.
pub(crate) fn listen(supervisor: &Supervisor) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let supervisor = supervisor.clone();
    tokio::spawn(async move {
        loop {
            let n = tokio::select! {
                Some(()) = int.recv() => 2,
                Some(()) = term.recv() => 15,
                Some(()) = hup.recv() => 1,
                else => break,
            };
            supervisor.signalled(n);
        }
    });
    Ok(())
}
