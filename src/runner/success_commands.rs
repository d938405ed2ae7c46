//! Owns the `[success]` commands: the workflow's, run once every instance
//! that counts is done, and a sub-workflow's, run after each of its rounds
//! (`super::group`). They run in conductor's environment with the agents'
//! PATH (so `conductor` itself is found), their output on conductor's
//! stderr.

use std::path::Path;

use super::context::Shared;
use super::event::{Event, Observer};
use super::outcome::Status;
use super::summary::{InstanceSummary, SuccessSummary};
use crate::process::StopLevel;
use crate::process::shell::{self, Output, ShellError};
use crate::stop_reason::StopReason;

/// Runs a `[success]` command; its exit code, or why it could not start.
pub(super) async fn run_success(
    command: &str,
    workdir: &Path,
    shared: &Shared,
) -> Result<i32, ShellError> {
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
    shell::run(
        command,
        workdir,
        &env,
        Output::Stderr {
            redact: shared.redactor.pairs(),
        },
        None,
        &shared.supervisor,
    )
    .await
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
        let (code, error) = match ran {
            Ok(code) => (code, None),
            Err(e) => (-1, Some(e.to_string())),
        };
        observer.event(&Event::SuccessChecked {
            command: c.command.clone(),
            exit_code: code,
            error,
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
