//! Owns a person's requests to stop one instance of the running apply
//! (`conductor serve`, docs/api.md): the request is a file in the run store
//! naming the instance, and SIGUSR1 wakes the dispatcher to take it. The
//! signal's handler is installed when the session opens, before the apply
//! is registered as running, so a request can never find conductor
//! without it (SIGUSR1's default would end the process).

use std::path::PathBuf;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Installs SIGUSR1's handler for the life of the process; call within
/// the runtime. Whether it could.
pub(crate) fn install() -> bool {
    signal(SignalKind::user_defined1()).is_ok()
}

/// The apply's stop requests, as they come.
#[derive(Debug)]
pub(super) struct Requests {
    signal: Option<Signal>,
    project_dir: PathBuf,
    apply_id: String,
}

impl Requests {
    /// Listens for the apply's requests; call within the runtime.
    pub(super) fn open(project_dir: PathBuf, apply_id: String) -> Self {
        Self {
            signal: signal(SignalKind::user_defined1()).ok(),
            project_dir,
            apply_id,
        }
    }

    /// The instance keys asked to stop since the last call; waits for a
    /// request (forever without a handler).
    pub(super) async fn next(&mut self) -> Vec<String> {
        match self.signal.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
        crate::store::live::take_stop_requests(&self.project_dir, &self.apply_id)
    }
}
