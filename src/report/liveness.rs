//! Owns what a running iteration's files say of it between its events, for
//! its live line (docs/console.md): an agent that has written nothing for a
//! while is "silent for 45s" rather than looking busy, and an HTTP agent's
//! retry (logged to its stderr as it happens) shows with its wait.

use std::time::{Duration, SystemTime};

use crate::model::AgentKind;
use crate::store::layout::RunDir;

/// How long an agent may write nothing before its line says so.
const SILENT_AFTER: Duration = Duration::from_secs(30);

/// ` · silent for 45s`, ` · attempt 2 of 6: ...; retrying in 1.0s`, or
/// nothing.
pub(super) fn note(run: &RunDir, kind: AgentKind, started: SystemTime) -> String {
    if !kind.is_process()
        && let Some(retry) = last_retry(run)
    {
        return format!(" · {retry}");
    }
    let latest = [run.stdout(), run.stderr()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .chain(std::iter::once(started))
        .max()
        .unwrap_or(started);
    match SystemTime::now().duration_since(latest) {
        Ok(quiet) if quiet >= SILENT_AFTER => format!(" · silent for {}s", quiet.as_secs()),
        _ => String::new(),
    }
}

/// The HTTP call's last line in its stderr, when it says a retry is
/// under way.
fn last_retry(run: &RunDir) -> Option<String> {
    let text = std::fs::read_to_string(run.stderr()).ok()?;
    let last = text.lines().last()?;
    last.starts_with("attempt ")
        .then(|| last.chars().take(120).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_run_is_silent_and_a_retry_shows() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::at(dir.path().to_path_buf());
        std::fs::write(run.stdout(), "x").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(100);
        let file = std::fs::File::options()
            .write(true)
            .open(run.stdout())
            .unwrap();
        file.set_modified(long_ago).unwrap();
        let note = note(&run, AgentKind::Command, long_ago);
        assert!(note.starts_with(" · silent for 10"), "{note}");
        std::fs::write(run.stderr(), "attempt 1 of 6: 429; retrying in 0.5s\n").unwrap();
        assert_eq!(
            super::note(&run, AgentKind::Openai, long_ago),
            " · attempt 1 of 6: 429; retrying in 0.5s"
        );
        // A fresh write is not silence.
        std::fs::write(run.stdout(), "more").unwrap();
        assert_eq!(super::note(&run, AgentKind::Command, long_ago), "");
    }
}
