//! Owns what conductor and its keeper say to each other. Requests go over
//! a Unix socket (the keeper's stdin), each a little-endian `u32` length
//! then that much JSON, with a spawn's three standard streams passed as
//! descriptors beside it (so files are opened, and their errors reported,
//! by conductor as before). Replies come back as JSON lines on the
//! keeper's stdout. Both live only in memory: an agent's environment, keys
//! included, is never written anywhere on its way.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

/// The environment entry every process of a run carries (`NAME=<tag>`),
/// by which the keeper knows a run's processes that left its process group
/// where no cgroup holds them.
pub(crate) const RUN_TAG: &str = "CONDUCTOR_RUN_TAG";

/// The longest request the keeper reads (an agent's arguments and
/// environment): a larger length is a broken stream, not a request.
const MAX_REQUEST: u32 = 64 << 20;

/// How runs are contained (`--containment`, docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Containment {
    /// A cgroup per run where one can be made here, else `subreaper`.
    #[default]
    Auto,
    /// A cgroup per run, or the apply does not start (exit 3).
    Cgroup,
    /// The keeper adopts every orphan and finds a run's processes by their
    /// process group and the run's tag in their environment.
    Subreaper,
}

/// From conductor to the keeper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Request {
    /// Start a run, its stdin, stdout and stderr the three descriptors sent
    /// with the request.
    Spawn(SpawnRequest),
    /// SIGTERM to every process of run `id`.
    Term { id: u64 },
    /// SIGKILL to every process of run `id`.
    Kill { id: u64 },
}

/// Run `id`: `program` with `args` in `cwd`, with exactly `env`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SpawnRequest {
    pub id: u64,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Secret values and their marks: when there are some, the run's
    /// stdout and stderr reach their descriptors redacted.
    pub redact: Vec<(String, String)>,
}

/// From the keeper to conductor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    /// The keeper is up; how it contains runs (docs/security.md).
    Ready { containment: String },
    /// The containment asked for is not available here; the keeper exits.
    Unavailable { why: String },
    /// Run `id` started: its first process.
    Started { id: u64, pid: i32 },
    /// Run `id` could not start.
    Failed {
        id: u64,
        error: String,
        os_error: Option<i32>,
    },
    /// Run `id`'s first process exited (`code`: its exit code, or 128 +
    /// the signal that killed it) and nothing of the run is left.
    Exited { id: u64, code: i32 },
}

/// Sends `request` with `fds` on `socket`.
pub(crate) fn send(
    socket: &UnixStream,
    request: &Request,
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let body = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_REQUEST)
        .ok_or_else(|| std::io::Error::other("request too large for the keeper"))?;
    let header = len.to_le_bytes();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other(
            "too many descriptors for one request",
        ));
    }
    let sent = rustix::net::sendmsg(
        socket,
        &[IoSlice::new(&header), IoSlice::new(&body)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    // A blocking stream socket sends it all; should it not, the rest goes
    // as plain bytes (the descriptors went with the first).
    let all: Vec<u8> = header.iter().chain(&body).copied().collect();
    if let Some(rest) = all.get(sent..).filter(|r| !r.is_empty()) {
        (&*socket).write_all(rest)?;
    }
    Ok(())
}

/// Reads the next request and the descriptors sent with it; `None` at the
/// end of the stream (conductor is gone).
pub(crate) fn receive(socket: &UnixStream) -> std::io::Result<Option<(Request, Vec<OwnedFd>)>> {
    let mut header = [0u8; 4];
    let mut got = 0;
    let mut fds = Vec::new();
    while got < header.len() {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(
            socket.as_fd(),
            &mut [IoSliceMut::new(&mut header[got..])],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        );
        let n = match received {
            Ok(r) => r.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        got += n;
    }
    let len = u32::from_le_bytes(header);
    if len > MAX_REQUEST {
        return Err(std::io::Error::other(
            "a request longer than any conductor sends",
        ));
    }
    let mut body = vec![0u8; len as usize];
    (&*socket).read_exact(&mut body)?;
    let request = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    Ok(Some((request, fds)))
}

/// One reply as the line the keeper writes.
pub(crate) fn line(reply: &Reply) -> String {
    let mut text = serde_json::to_string(reply).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_its_descriptors_cross_the_socket_in_order() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        let spawn = Request::Spawn(SpawnRequest {
            id: 7,
            program: "/bin/true".into(),
            args: vec!["x y".into()],
            cwd: "/".into(),
            env: vec![("KEY".into(), "v=1\n2".into())],
            redact: Vec::new(),
        });
        send(&a, &spawn, &[file.as_fd(), file.as_fd(), file.as_fd()]).unwrap();
        send(&a, &Request::Term { id: 7 }, &[]).unwrap();
        drop(a);
        let (first, fds) = receive(&b).unwrap().unwrap();
        assert!(matches!(first, Request::Spawn(ref s) if s.id == 7 && s.env[0].1 == "v=1\n2"));
        assert_eq!(fds.len(), 3);
        let (second, fds) = receive(&b).unwrap().unwrap();
        assert!(matches!(second, Request::Term { id: 7 }));
        assert!(fds.is_empty());
        assert!(receive(&b).unwrap().is_none(), "the end of the stream");
    }
}
