//! Owns the guarantee that agents die with conductor, even when conductor
//! is killed with SIGKILL (docs/run-store.md). One small `conductor __watchdog`
//! process per apply, in its own process group and deaf to terminal
//! signals, is told each agent's group and start time over a pipe. When
//! the pipe closes (conductor exited, however it exited) it kills every
//! group still registered. `PR_SET_PDEATHSIG` is not used: it fires when the
//! spawning thread exits and never reaches grandchildren.

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

use rustix::process::Signal;

use super::group::signal_group;

/// Conductor's end of the pipe.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    pipe: ChildStdin,
}

impl Watchdog {
    /// Starts the watchdog; `exe` is conductor's own binary.
    pub(crate) fn start(exe: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(exe)
            .arg("__watchdog")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("the watchdog has no stdin"))?;
        Ok(Self { child, pipe })
    }

    /// Hands an agent's group to the watchdog.
    pub(crate) fn watch(&mut self, pgid: i32, start: Option<u64>) {
        // One write per line: the pipe is unbuffered, and a line written in
        // pieces would cost a system call per piece.
        let line = format!("+{pgid} {}\n", start.unwrap_or(0));
        let _ = self.pipe.write_all(line.as_bytes());
    }

    /// Takes a group back once its agent is gone.
    pub(crate) fn release(&mut self, pgid: i32) {
        let _ = self.pipe.write_all(format!("-{pgid}\n").as_bytes());
    }

    /// Closes the pipe. The watchdog then exits by itself; conductor does not
    /// wait for it (that would add a process exit to every apply), and when
    /// conductor exits first, init reaps it.
    pub(crate) fn finish(self) {
        let Self { child, pipe } = self;
        drop(pipe);
        drop(child);
    }
}

/// The watchdog process itself: reads `+PGID START` and `-PGID` lines until
/// end of input, then kills every group still registered.
pub(crate) fn run() -> u8 {
    // Ctrl-C reaches the whole foreground group; the watchdog must outlive
    // conductor's graceful stop, so it ignores what a terminal sends.
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGQUIT,
    ] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::default());
    }
    let mut groups: std::collections::HashMap<i32, u64> = std::collections::HashMap::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix('+') {
            let mut parts = rest.split(' ');
            if let (Some(Ok(pgid)), Some(Ok(start))) = (
                parts.next().map(str::parse::<i32>),
                parts.next().map(str::parse::<u64>),
            ) {
                groups.insert(pgid, start);
            }
        } else if let Some(Ok(pgid)) = line.strip_prefix('-').map(str::parse::<i32>) {
            groups.remove(&pgid);
        }
    }
    for (pgid, start) in groups {
        signal_group(pgid, (start != 0).then_some(start), Signal::KILL);
    }
    0
}
