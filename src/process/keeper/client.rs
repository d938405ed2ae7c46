//! Owns conductor's side of the keeper: starting it, sending it requests
//! from a thread of their own (a full socket never blocks the runtime that
//! reads the replies), and handing each reply to the run waiting on it. A
//! run is a [`Contained`]: its first process's pid, and its end, which the
//! keeper reports once nothing of the run is left.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use tokio::io::AsyncBufReadExt;
use tokio::sync::oneshot;

use super::protocol::{self, Containment, Reply, Request, SpawnRequest};
use crate::process::group::Stdio3;

/// Why the keeper could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeeperError {
    #[error("cannot start the process keeper: {0}")]
    Start(#[source] io::Error),
    #[error("the process keeper exited before it was ready")]
    Gone,
    #[error("{0}")]
    Unavailable(String),
}

/// What a run is started with.
#[derive(Debug)]
pub(crate) struct Spawn<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a [(String, String)],
    pub stdio: Stdio3,
    /// Secret values and their marks, redacted from its stdout and stderr.
    pub redact: &'a [(String, String)],
}

/// A run the keeper started.
#[derive(Debug)]
pub(crate) struct Contained {
    id: u64,
    pub pid: i32,
    exited: Option<oneshot::Receiver<i32>>,
    code: Option<i32>,
    keeper: Keeper,
}

/// Conductor's handle on its keeper.
#[derive(Debug, Clone)]
pub(crate) struct Keeper {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// To the sending thread; `None` once the keeper is told to finish.
    outbox: Mutex<Option<mpsc::Sender<Outgoing>>>,
    waiting: Mutex<HashMap<u64, Waiting>>,
    next: AtomicU64,
    containment: String,
}

/// A request and the descriptors sent with it.
type Outgoing = (Request, Vec<OwnedFd>);

#[derive(Debug, Default)]
struct Waiting {
    started: Option<oneshot::Sender<Result<i32, io::Error>>>,
    exited: Option<oneshot::Sender<i32>>,
}

impl Keeper {
    /// Starts `exe __keeper`, and waits for it to say how it contains runs.
    /// Must be called inside the runtime that will read its replies.
    pub(crate) async fn start(exe: &Path, containment: Containment) -> Result<Self, KeeperError> {
        Launch::new(exe, containment)?.ready().await
    }
}

/// A keeper started but not yet waited for: it gets ready while conductor
/// compiles and plans (docs/performance.md, issue 18).
#[derive(Debug)]
pub(crate) struct Launch {
    child: std::process::Child,
    ours: UnixStream,
}

impl Launch {
    /// Starts `exe __keeper`; needs no runtime.
    pub(crate) fn new(exe: &Path, containment: Containment) -> Result<Self, KeeperError> {
        let (ours, theirs) = UnixStream::pair().map_err(KeeperError::Start)?;
        let mode = match containment {
            Containment::Auto => "auto",
            Containment::Cgroup => "cgroup",
            Containment::Subreaper => "subreaper",
        };
        let child = std::process::Command::new(exe)
            .args(["__keeper", "--containment", mode])
            .stdin(std::process::Stdio::from(OwnedFd::from(theirs)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(KeeperError::Start)?;
        Ok(Self { child, ours })
    }

    /// Waits for the keeper to say how it contains runs. Must be called
    /// inside the runtime that will read its replies.
    pub(crate) async fn ready(self) -> Result<Keeper, KeeperError> {
        let Self { mut child, ours } = self;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| KeeperError::Start(io::Error::other("the keeper has no stdout")))
            .and_then(|o| tokio::process::ChildStdout::from_std(o).map_err(KeeperError::Start))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let containment = match lines
            .next_line()
            .await
            .ok()
            .flatten()
            .map(|l| serde_json::from_str(&l))
        {
            Some(Ok(Reply::Ready { containment })) => containment,
            Some(Ok(Reply::Unavailable { why })) => return Err(KeeperError::Unavailable(why)),
            _ => return Err(KeeperError::Gone),
        };
        let (outbox, inbox) = mpsc::channel::<Outgoing>();
        std::thread::Builder::new()
            .name("keeper-requests".into())
            .spawn(move || {
                for (request, fds) in inbox {
                    let borrowed: Vec<_> = fds.iter().map(AsFd::as_fd).collect();
                    if protocol::send(&ours, &request, &borrowed).is_err() {
                        break;
                    }
                }
                // `ours` closes here: the keeper ends everything left and exits.
            })
            .map_err(KeeperError::Start)?;
        let keeper = Keeper {
            inner: Arc::new(Inner {
                outbox: Mutex::new(Some(outbox)),
                waiting: Mutex::new(HashMap::new()),
                next: AtomicU64::new(1),
                containment,
            }),
        };
        let routed = keeper.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(reply) = serde_json::from_str(&line) {
                    routed.route(reply);
                }
            }
            routed.lost();
            // Its stdout ended with it: reaped here, so that a keeper that
            // ended is no zombie.
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        });
        Ok(keeper)
    }
}

impl Keeper {
    /// How the keeper contains runs, as it said (docs/security.md).
    pub(crate) fn containment(&self) -> &str {
        &self.inner.containment
    }

    /// Starts a run.
    pub(crate) async fn spawn(&self, spawn: Spawn<'_>) -> io::Result<Contained> {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (started_tx, started_rx) = oneshot::channel();
        let (exited_tx, exited_rx) = oneshot::channel();
        self.waiting().insert(
            id,
            Waiting {
                started: Some(started_tx),
                exited: Some(exited_tx),
            },
        );
        let request = Request::Spawn(SpawnRequest {
            id,
            program: spawn.program.to_path_buf(),
            args: spawn.args.to_vec(),
            cwd: spawn.cwd.to_path_buf(),
            env: spawn.env.to_vec(),
            redact: spawn.redact.to_vec(),
        });
        let fds = vec![
            OwnedFd::from(spawn.stdio.stdin),
            OwnedFd::from(spawn.stdio.stdout),
            OwnedFd::from(spawn.stdio.stderr),
        ];
        self.send(request, fds);
        match started_rx.await {
            Ok(Ok(pid)) => Ok(Contained {
                id,
                pid,
                exited: Some(exited_rx),
                code: None,
                keeper: self.clone(),
            }),
            Ok(Err(e)) => {
                self.waiting().remove(&id);
                Err(e)
            }
            Err(_) => Err(gone()),
        }
    }

    /// No more runs: the keeper ends what is left and exits.
    pub(crate) fn finish(&self) {
        self.inner
            .outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    fn send(&self, request: Request, fds: Vec<OwnedFd>) {
        if let Some(outbox) = self
            .inner
            .outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            let _ = outbox.send((request, fds));
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn route(&self, reply: Reply) {
        let mut waiting = self.waiting();
        match reply {
            Reply::Started { id, pid } => {
                if let Some(tx) = waiting.get_mut(&id).and_then(|w| w.started.take()) {
                    let _ = tx.send(Ok(pid));
                }
            }
            Reply::Failed {
                id,
                error,
                os_error,
            } => {
                if let Some(tx) = waiting.remove(&id).and_then(|w| w.started) {
                    let e = os_error
                        .map_or_else(|| io::Error::other(error), io::Error::from_raw_os_error);
                    let _ = tx.send(Err(e));
                }
            }
            Reply::Exited { id, code } => {
                if let Some(tx) = waiting.remove(&id).and_then(|w| w.exited) {
                    let _ = tx.send(code);
                }
            }
            Reply::Ready { .. } | Reply::Unavailable { .. } => {}
        }
    }

    /// The keeper died (killed from outside): nothing will end its runs,
    /// so each waiting one ends now, failed.
    fn lost(&self) {
        let waiting: Vec<Waiting> = self.waiting().drain().map(|(_, w)| w).collect();
        for w in waiting {
            if let Some(tx) = w.started {
                let _ = tx.send(Err(gone()));
            }
            if let Some(tx) = w.exited {
                let _ = tx.send(-1);
            }
        }
    }
}

fn gone() -> io::Error {
    io::Error::other("the process keeper has exited")
}

impl Contained {
    /// Waits for the run to end: its exit code (128 + the signal that
    /// killed it), once nothing of it is left.
    pub(crate) async fn wait(&mut self) -> i32 {
        if let Some(code) = self.code {
            return code;
        }
        let code = match self.exited.as_mut() {
            Some(rx) => rx.await.unwrap_or(-1),
            None => -1,
        };
        self.code = Some(code);
        self.exited = None;
        code
    }

    /// SIGTERM to every process of the run.
    pub(crate) fn terminate(&self) {
        self.keeper.send(Request::Term { id: self.id }, Vec::new());
    }

    /// SIGKILL to every process of the run.
    pub(crate) fn kill(&self) {
        self.keeper.send(Request::Kill { id: self.id }, Vec::new());
    }
}

impl Drop for Contained {
    /// A run nobody waits for any more (its unit was dropped) is killed.
    fn drop(&mut self) {
        if self.code.is_none() {
            self.kill();
        }
    }
}
