//! Owns finding out which version of an agent CLI will run: `<program>
//! --version`, once per program per process, bounded by a timeout so a CLI
//! that waits for input cannot hold up a plan. The version feeds the
//! fingerprint (DESIGN §9.16) and is recorded in each run's run-info.yaml.
//! `command` agents have no version to probe: their argv stands for them.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::AgentKind;

/// How long a `--version` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Probed versions by resolved program path.
#[derive(Debug, Default)]
pub struct Versions {
    known: Mutex<HashMap<PathBuf, String>>,
}

impl Versions {
    /// The version of the CLI `program` resolves to, for kinds that have one;
    /// empty for `command` agents and programs that are not found.
    pub fn of(&self, kind: AgentKind, program: &str, path_var: &str, cwd: &Path) -> String {
        if !matches!(
            kind,
            AgentKind::Claude | AgentKind::Codex | AgentKind::Gemini
        ) {
            return String::new();
        }
        let Some(resolved) = super::process::resolve(program, path_var, cwd) else {
            return String::new();
        };
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        known
            .entry(resolved.clone())
            .or_insert_with(|| probe(&resolved).unwrap_or_else(|| "unknown".into()))
            .clone()
    }
}

/// The first non-empty line `program --version` prints, if it prints one in time.
fn probe(program: &Path) -> Option<String> {
    let mut child = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                // The whole group: a CLI is often a launcher with a child.
                if let Some(pid) =
                    rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX))
                {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    let text = reader.join().ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
}
