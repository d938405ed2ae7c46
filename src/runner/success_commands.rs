//! Owns the `[success]` commands: the workflow's, run once every instance
//! that counts is done, and a sub-workflow's, run after each of its rounds
//! (`super::group`). They run in conductor's environment with the agents'
//! PATH (so `conductor` itself is found). Their output (redacted) goes to
//! a file of its own, not into the live view: a failed command's last
//! lines are shown folded under it (docs/console.md).

use std::path::Path;

use super::context::Shared;
use super::event::{Event, Observer};
use super::outcome::Status;
use super::summary::{InstanceSummary, SuccessSummary};
use crate::process::StopLevel;
use crate::process::shell::{self, Output, ShellError};
use crate::stop_reason::StopReason;

/// The most lines of a failed command's output shown under it.
const SHOWN_LINES: usize = 12;

/// What a `[success]` command came to: its exit code and the last lines it
/// printed (stdout and stderr together).
#[derive(Debug)]
pub(super) struct Checked {
    pub code: i32,
    pub tail: String,
}

/// Runs a `[success]` command; its exit code and last lines, or why it
/// could not start.
pub(super) async fn run_success(
    command: &str,
    workdir: &Path,
    shared: &Shared,
) -> Result<Checked, ShellError> {
    let output = tempfile::NamedTempFile::new().map_err(|source| ShellError {
        command: command.to_string(),
        source,
    })?;
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
    let code = shell::run(
        command,
        workdir,
        &env,
        Output {
            path: output.path(),
            redact: shared.redactor.pairs(),
        },
        None,
        &shared.supervisor,
    )
    .await?;
    Ok(Checked {
        code,
        tail: super::iteration::tail_lines(output.path(), SHOWN_LINES),
    })
}

/// The workflow's `[success]` commands, when every instance that counts is
/// done and something ran (an apply that found everything up to date after
/// a successful one has nothing new to check). A Ctrl-C that nobody has
/// told yet (`told`: the dispatcher did) is told once, as the dispatcher
/// tells it.
pub(super) async fn check(
    shared: &Shared,
    instances: &[InstanceSummary],
    stop_reason: Option<&StopReason>,
    told: bool,
    observer: &mut dyn Observer,
) -> Vec<SuccessSummary> {
    let mut told = told;
    tell(&mut told, shared, observer);
    let failed = instances
        .iter()
        .any(|i| i.status == Status::Failed && i.counts);
    let all_current = !shared.continued
        && instances
            .iter()
            .all(|i| i.stop_reason == StopReason::UpToDate);
    let mut out = Vec::new();
    if stop_reason.is_some() || failed || all_current {
        return out;
    }
    let entry_dir = shared.program.entry_dir();
    for c in shared.success.iter() {
        if shared.stop_level() > StopLevel::Running {
            tell(&mut told, shared, observer);
            break;
        }
        let workdir = crate::paths::normalize(&entry_dir.join(&c.workdir));
        let run = run_success(&c.command, &workdir, shared);
        tokio::pin!(run);
        let stopping = shared.supervisor.reached(StopLevel::Graceful);
        tokio::pin!(stopping);
        let ran = loop {
            tokio::select! {
                // A stop that comes as the command ends is still told.
                biased;
                () = &mut stopping, if !told => tell(&mut told, shared, observer),
                ran = &mut run => break ran,
            }
        };
        let (code, tail, error) = match ran {
            Ok(checked) => (checked.code, checked.tail, None),
            Err(e) => (-1, String::new(), Some(e.to_string())),
        };
        observer.event(&Event::SuccessChecked {
            command: c.command.clone(),
            exit_code: code,
            error,
            tail,
        });
        out.push(SuccessSummary {
            command: c.command.clone(),
            exit_code: code,
        });
    }
    out
}

/// Tells the first stop signal, unless it was told.
fn tell(told: &mut bool, shared: &Shared, observer: &mut dyn Observer) {
    if !*told && shared.supervisor.signal().is_some() {
        *told = true;
        observer.event(&Event::Stopping {
            reason: StopReason::Interrupted,
        });
    }
}
