//! Owns what every process conductor starts is held by: the stop level of
//! the apply (running, stopping gracefully, stopping now) and the first stop
//! signal that raised it, the grace period between SIGTERM and SIGKILL, and
//! the watchdog that each process group is handed to so it dies with
//! conductor. One [`Supervisor`] per session; every agent run and shell
//! command gets a clone.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::group::Spawned;
use super::watchdog::Watchdog;

/// How hard the apply is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum StopLevel {
    Running,
    /// SIGTERM to agents, SIGKILL after the grace period.
    Graceful,
    /// SIGKILL now (a second Ctrl-C).
    Now,
}

/// Resolves when the stop level reaches `level`.
pub(crate) async fn reached(mut stop: watch::Receiver<StopLevel>, level: StopLevel) {
    // An error means the sender is gone: the session ended, nothing more
    // will be stopped, and waiting on is what the caller expects.
    if stop.wait_for(|l| *l >= level).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The session's hold on the processes it starts.
#[derive(Debug, Clone)]
pub(crate) struct Supervisor {
    watchdog: Arc<Mutex<Option<Watchdog>>>,
    grace: Duration,
    raise: Arc<watch::Sender<StopLevel>>,
    stop: watch::Receiver<StopLevel>,
    /// The first stop signal's number (0: none came).
    signal: Arc<AtomicI32>,
}

impl Supervisor {
    /// A supervisor whose process groups `watchdog` holds (none: an
    /// in-process test that starts no process).
    pub(crate) fn new(watchdog: Option<Watchdog>, grace: Duration) -> Self {
        let (raise, stop) = watch::channel(StopLevel::Running);
        Self {
            watchdog: Arc::new(Mutex::new(watchdog)),
            grace,
            raise: Arc::new(raise),
            stop,
            signal: Arc::default(),
        }
    }

    /// Raises the stop level to `level`, if it is lower.
    pub(crate) fn raise(&self, level: StopLevel) {
        self.raise.send_if_modified(|l| {
            let higher = *l < level;
            if higher {
                *l = level;
            }
            higher
        });
    }

    /// A stop signal came (`n`: its number). The first stops gracefully
    /// and is kept (it decides the exit code); any later one stops now.
    /// Whoever waits on the level is woken even when it was that high
    /// already (`--fail-fast` raised it), so that the first signal can be
    /// told.
    pub(crate) fn signalled(&self, n: i32) {
        let level = match self
            .signal
            .compare_exchange(0, n, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => StopLevel::Graceful,
            Err(_) => StopLevel::Now,
        };
        self.raise.send_modify(|l| {
            if *l < level {
                *l = level;
            }
        });
    }

    /// The first stop signal's number, if one came.
    pub(crate) fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }

    /// SIGTERM-to-SIGKILL grace period.
    pub(crate) fn grace(&self) -> Duration {
        self.grace
    }

    pub(crate) fn stop_level(&self) -> StopLevel {
        *self.stop.borrow()
    }

    /// The stop level, to wait on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<StopLevel> {
        self.stop.clone()
    }

    /// Resolves when the stop level reaches `level`.
    pub(crate) fn reached(&self, level: StopLevel) -> impl Future<Output = ()> + use<> {
        reached(self.stop.clone(), level)
    }

    /// Hands a spawned group to the watchdog.
    pub(crate) fn hold(&self, spawned: &Spawned) {
        self.with_watchdog(|w| w.watch(spawned.pid, spawned.start_ticks));
    }

    /// Takes a group back from the watchdog once it is gone.
    pub(crate) fn release(&self, spawned: &Spawned) {
        self.with_watchdog(|w| w.release(spawned.pid));
    }

    /// Stops a group the way a cut run is stopped: SIGTERM, the grace
    /// period (none once the apply is stopping now), SIGKILL.
    pub(crate) async fn stop(
        &self,
        spawned: &mut Spawned,
    ) -> std::io::Result<std::process::ExitStatus> {
        let grace = if self.stop_level() == StopLevel::Now {
            Duration::ZERO
        } else {
            self.grace
        };
        super::group::stop(spawned, grace, self.reached(StopLevel::Now)).await
    }

    /// The watchdog exits; groups still held are killed by it.
    pub(crate) fn finish(&self) {
        let taken = self
            .watchdog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = taken {
            w.finish();
        }
    }

    fn with_watchdog(&self, f: impl FnOnce(&mut Watchdog)) {
        // The lock is never held across an await; a poisoned one still
        // guards a usable pipe.
        let mut guard = self
            .watchdog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = guard.as_mut() {
            f(w);
        }
    }
}
