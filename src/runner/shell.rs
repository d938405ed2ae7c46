//! Owns the shell commands conductor runs itself: `stop.command` checks, a
//! sub-workflow's and the workflow's `[success]` commands. Each runs with
//! `sh -c` in its own process group, held by the watchdog like an agent, and
//! is stopped like one by Ctrl-C (or its timeout).

use std::path::Path;
use std::time::Duration;

use super::context::{Shared, StopLevel, reached};
use super::process;

/// Where a command's output goes.
#[derive(Debug, Clone, Copy)]
pub enum Output {
    /// A check: only its exit code matters.
    Discard,
    /// A `[success]` command: the user reads it on conductor's stderr
    /// (stdout is for machine output).
    Stderr,
}

fn streams(output: Output) -> std::io::Result<process::Stdio3> {
    use std::os::fd::AsFd;
    let out = || match output {
        Output::Discard => std::fs::OpenOptions::new().write(true).open("/dev/null"),
        Output::Stderr => std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from),
    };
    Ok(process::Stdio3 {
        stdin: std::fs::File::open("/dev/null")?,
        stdout: out()?,
        stderr: out()?,
    })
}

/// Runs `command` in `workdir`; its exit code (128 + signal when killed).
pub async fn run(
    command: &str,
    workdir: &Path,
    env: &[(String, String)],
    output: Output,
    timeout: Option<Duration>,
    shared: &Shared,
) -> Result<i32, String> {
    let streams = streams(output).map_err(|e| format!("cannot run `{command}`: {e}"))?;
    let mut child = process::spawn(
        Path::new("/bin/sh"),
        &["-c".to_string(), command.to_string()],
        workdir,
        env,
        streams,
    )
    .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    shared.watch_group(child.pid, child.start_ticks);
    let limit = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let stop = reached(shared.stop.clone(), StopLevel::Graceful);
    let status = tokio::select! {
        s = child.child.wait() => s,
        () = limit => process::stop(&mut child, shared.grace, std::future::pending()).await,
        () = stop => {
            let now = reached(shared.stop.clone(), StopLevel::Now);
            process::stop(&mut child, shared.grace, now).await
        }
    };
    process::sweep(&child);
    shared.release_group(child.pid);
    Ok(status.map_or(-1, process::exit_code))
}

/// Runs a `[success]` command in conductor's environment (with the agents'
/// PATH, so `conductor` itself is found); its exit code, -1 if it could not
/// start (said on stderr).
pub async fn run_success(command: &str, workdir: &Path, shared: &Shared) -> i32 {
    let env: Vec<(String, String)> = shared
        .base_env
        .iter()
        .filter(|(k, _)| k != "PATH")
        .cloned()
        .chain(std::iter::once((
            "PATH".to_string(),
            shared.agent_path.clone(),
        )))
        .collect();
    match run(command, workdir, &env, Output::Stderr, None, shared).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("conductor: {e}");
            -1
        }
    }
}
