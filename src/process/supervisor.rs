//! Owns what every process conductor starts is held by: the stop level of
//! the apply (running, stopping gracefully, stopping now) and the first stop
//! signal that raised it, the grace period between SIGTERM and SIGKILL, and
//! the keeper that starts and contains every process. One [`Supervisor`]
//! per session; every agent run and shell command gets a clone.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::keeper::{Contained, Keeper, Spawn};

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
    keeper: Option<Keeper>,
    grace: Duration,
    raise: Arc<watch::Sender<StopLevel>>,
    stop: watch::Receiver<StopLevel>,
    /// The first stop signal's number (0: none came).
    signal: Arc<AtomicI32>,
    /// Starts under way: a start holds its three stdio files until the
    /// keeper has them, so the files open at once are bounded by this, not
    /// by how many agents start together (docs/performance.md).
    starting: Arc<tokio::sync::Semaphore>,
}

/// The most process starts under way at once.
const STARTING: usize = 64;

impl Supervisor {
    /// A supervisor whose processes `keeper` starts (none: an in-process
    /// test that starts no process).
    pub(crate) fn new(keeper: Option<Keeper>, grace: Duration) -> Self {
        let (raise, stop) = watch::channel(StopLevel::Running);
        Self {
            keeper,
            grace,
            raise: Arc::new(raise),
            stop,
            signal: Arc::default(),
            starting: Arc::new(tokio::sync::Semaphore::new(STARTING)),
        }
    }

    /// Waits for a turn to start a process; held from opening its stdio
    /// files until [`Self::spawn`] returns.
    pub(crate) async fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.starting).acquire_owned().await.ok()
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

    /// How the keeper contains runs (none without a keeper).
    pub(crate) fn containment(&self) -> Option<&str> {
        self.keeper.as_ref().map(Keeper::containment)
    }

    /// Starts a run through the keeper.
    pub(crate) async fn spawn(&self, spawn: Spawn<'_>) -> std::io::Result<Contained> {
        match &self.keeper {
            Some(k) => k.spawn(spawn).await,
            None => Err(std::io::Error::other("no process keeper in this session")),
        }
    }

    /// Stops a run the way a cut run is stopped: SIGTERM to all of it, the
    /// grace period (none once the apply is stopping now), SIGKILL; its
    /// exit code once nothing of it is left.
    pub(crate) async fn stop(&self, run: &mut Contained) -> i32 {
        let grace = if self.stop_level() == StopLevel::Now {
            Duration::ZERO
        } else {
            self.grace
        };
        stop(run, grace, self.reached(StopLevel::Now)).await
    }

    /// The keeper ends what is left and exits.
    pub(crate) fn finish(&self) {
        if let Some(k) = &self.keeper {
            k.finish();
        }
    }
}

/// SIGTERM to all of `run`, then SIGKILL once `grace` has passed or `now`
/// fires (a second Ctrl-C); its exit code.
pub(crate) async fn stop(
    run: &mut Contained,
    grace: Duration,
    now: impl std::future::Future<Output = ()>,
) -> i32 {
    run.terminate();
    tokio::select! {
        code = run.wait() => return code,
        () = tokio::time::sleep(grace) => {}
        () = now => {}
    }
    run.kill();
    run.wait().await
}
