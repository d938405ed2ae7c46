//! Owns finding out which version of an agent CLI will run: `<program>
//! --version`, once per program per process, bounded by a timeout so a CLI
//! that waits for input cannot hold up a plan. The version feeds the
//! fingerprint (docs/watch.md) and is recorded in each run's run-info.yaml.
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

/// Probed versions, by program as written (and the folder, for a relative
/// path): every iteration records its agent's version, so a known one
/// must cost no PATH search.
#[derive(Debug, Default)]
pub(crate) struct Versions {
    known: Mutex<HashMap<(String, PathBuf), String>>,
}

impl Versions {
    /// The version of the CLI `program` resolves to, for kinds that have one;
    /// empty for `command` agents and programs that are not found.
    pub(crate) fn of(&self, kind: AgentKind, program: &str, path_var: &str, cwd: &Path) -> String {
        if super::kind::cli(kind).is_none() {
            return String::new();
        }
        let folder = if program.contains('/') {
            cwd.to_path_buf()
        } else {
            PathBuf::new()
        };
        let key = (program.to_string(), folder);
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = known.get(&key) {
            return v.clone();
        }
        let version = crate::process::resolve(program, path_var, cwd)
            .map_or_else(String::new, |p| {
                probe(&p).unwrap_or_else(|| "unknown".into())
            });
        known.insert(key, version.clone());
        version
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
