//! Owns the shell commands conductor runs itself (`stop.command` checks,
//! a sub-workflow's and the workflow's `[success]` commands). Each runs
//! with `sh -c`, started and contained by the keeper like an agent, and is
//! stopped like one by Ctrl-C (or its timeout).

use std::path::Path;
use std::time::Duration;

use super::group::Stdio3;
use super::keeper::Spawn;
use super::supervisor::{self, StopLevel, Supervisor};

/// Where a command's output goes: stdout and stderr together into this
/// file (made anew, readable by its user only), with these secrets
/// redacted. Its last lines say why a check or a `[success]` command
/// failed; nothing of it is mixed into conductor's own output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output<'a> {
    pub path: &'a Path,
    pub redact: &'a [(String, String)],
}

/// A command that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot run `{command}`: {source}")]
pub(crate) struct ShellError {
    pub command: String,
    pub source: std::io::Error,
}

fn streams(output: Output<'_>) -> std::io::Result<Stdio3> {
    use std::os::unix::fs::OpenOptionsExt;
    // Made anew: whatever is at the path (a symlink an agent planted in
    // its run folder) is removed, never followed.
    let out = || {
        let _ = std::fs::remove_file(output.path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(output.path)
    };
    // One open file for both: a file's two streams share its offset.
    let stdout = out()?;
    Ok(Stdio3 {
        stdin: std::fs::File::open("/dev/null")?,
        stderr: stdout.try_clone()?,
        stdout,
    })
}

/// Runs `command` in `workdir`; its exit code (128 + signal when killed).
pub(crate) async fn run(
    command: &str,
    workdir: &Path,
    env: &[(String, String)],
    output: Output<'_>,
    timeout: Option<Duration>,
    supervisor: &Supervisor,
) -> Result<i32, ShellError> {
    let failed = |source| ShellError {
        command: command.to_string(),
        source,
    };
    let admitted = supervisor.admit().await;
    let streams = streams(output).map_err(failed)?;
    let args = ["-c".to_string(), command.to_string()];
    let mut run = supervisor
        .spawn(Spawn {
            program: Path::new("/bin/sh"),
            args: &args,
            cwd: workdir,
            env,
            stdio: streams,
            redact: output.redact,
        })
        .await
        .map_err(failed)?;
    drop(admitted);
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let code = tokio::select! {
        code = run.wait() => code,
        () = limit => supervisor::stop(&mut run, supervisor.grace(), std::future::pending()).await,
        () = supervisor.reached(StopLevel::Graceful) => supervisor.stop(&mut run).await,
    };
    Ok(code)
}
