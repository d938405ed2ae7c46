//! Owns starting and stopping one process group: a program starts as the
//! leader of its own group with its standard streams on files (an agent's
//! stdin is prompt.md, its stdout and stderr the run's files, so output is
//! on disk as it comes and no pipe can fill), and is stopped as a group:
//! SIGTERM, a grace period, then SIGKILL.
//! Groups are only signalled after checking the leader's start time, so a
//! reused pid is never hit.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};

/// A started process, leading its own group.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub child: tokio::process::Child,
    pub pid: i32,
    /// The leader's start time (clock ticks after boot), when /proc has it.
    pub start_ticks: Option<u64>,
}

/// Where an agent's standard streams go.
#[derive(Debug)]
pub(crate) struct Stdio3 {
    pub stdin: File,
    pub stdout: File,
    pub stderr: File,
}

/// Finds `program` on `path` (a PATH value) unless it names a file itself.
pub(crate) fn resolve(program: &str, path: &str, cwd: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = cwd.join(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// Starts `argv` in its own process group.
pub(crate) fn spawn(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &[(String, String)],
    stdio: Stdio3,
) -> std::io::Result<Spawned> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(stdio.stdin))
        .stdout(Stdio::from(stdio.stdout))
        .stderr(Stdio::from(stdio.stderr))
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn()?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| std::io::Error::other("the agent exited before its pid was known"))?;
    Ok(Spawned {
        child,
        pid,
        start_ticks: start_ticks(pid),
    })
}

/// The start time of `pid` in clock ticks after boot (field 22 of /proc/PID/stat).
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    use std::io::Read;
    // One read: the line is a few hundred bytes, and `read_to_string` would
    // grow its buffer from 32 bytes a read at a time.
    let mut buf = [0u8; 1024];
    let n = std::fs::File::open(format!("/proc/{pid}/stat"))
        .and_then(|mut f| f.read(&mut buf))
        .ok()?;
    let stat = std::str::from_utf8(&buf[..n]).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Signals the group led by `pgid`, unless its leader's pid now belongs to
/// another process. A group whose leader has exited is still signalled:
/// its id cannot be reused while members remain.
pub(crate) fn signal_group(pgid: i32, start: Option<u64>, signal: Signal) {
    if let (Some(expected), Some(now)) = (start, start_ticks(pgid))
        && expected != now
    {
        return;
    }
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = kill_process_group(pid, signal);
    }
}

/// An exit status as the shell reports it: the code, or 128 + the signal.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Stops a group: SIGTERM, then SIGKILL once `grace` has passed or
/// `now` fires (a second Ctrl-C). Returns the leader's exit status.
pub(crate) async fn stop(
    agent: &mut Spawned,
    grace: Duration,
    now: impl std::future::Future<Output = ()>,
) -> std::io::Result<ExitStatus> {
    signal_group(agent.pid, agent.start_ticks, Signal::TERM);
    let waited = tokio::select! {
        status = agent.child.wait() => Some(status),
        () = tokio::time::sleep(grace) => None,
        () = now => None,
    };
    let status = match waited {
        Some(status) => status,
        None => {
            signal_group(agent.pid, agent.start_ticks, Signal::KILL);
            agent.child.wait().await
        }
    };
    sweep(agent);
    status
}

/// Kills whatever is left in a group after its leader exited (a
/// backgrounded grandchild), so nothing outlives its run.
pub(crate) fn sweep(agent: &Spawned) {
    if let Some(pid) = Pid::from_raw(agent.pid) {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}
