//! Owns talking to Slurm (docs/distributed.md): `sbatch` to submit a unit,
//! one `squeue` of the user's jobs shared by every unit of an apply (asked
//! at most once a second, however many units wait), and `scancel` to stop
//! a job: its `conductor __unit` first, gently, then everything in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::process::Command;

/// Something Slurm said no to, or could not be asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SlurmError {
    #[error("cannot run `{program}`: {source} (is Slurm installed, and SLURM_CONF set?)")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("`{program}` failed: {stderr}")]
    Failed {
        program: &'static str,
        stderr: String,
    },
    /// The keys file for the workers cannot be used.
    #[error("{0}")]
    Credentials(String),
}

/// A job as `squeue` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    /// `PENDING`, `RUNNING`, `COMPLETING`...
    pub state: String,
    /// The node it runs on; empty while pending.
    pub node: String,
}

/// What a submission is.
#[derive(Debug)]
pub(crate) struct Submission<'a> {
    pub name: &'a str,
    pub exe: &'a Path,
    pub spec: &'a Path,
    pub workdir: &'a Path,
    /// Slurm's own output of the job (what conductor on the worker prints).
    pub output: PathBuf,
    /// The user's extra `sbatch` arguments.
    pub extra: &'a [String],
    /// The environment the job gets: the submitter's, without its keys.
    pub env: Vec<(String, String)>,
}

/// The arguments of `sbatch` that submit a unit.
pub(crate) fn arguments(s: &Submission<'_>) -> Vec<String> {
    let wrap = format!(
        "exec {} __unit {}",
        quote(&s.exe.display().to_string()),
        quote(&s.spec.display().to_string())
    );
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name={}", s.name),
        format!("--output={}", s.output.display()),
        format!("--chdir={}", s.workdir.display()),
        // A job Slurm started again by itself would run with no dispatcher
        // following it: the dispatcher resumes a lost unit instead.
        "--no-requeue".to_string(),
    ];
    args.extend(s.extra.iter().cloned());
    args.push(format!("--wrap={wrap}"));
    args
}

/// Submits a unit; its job id.
pub(crate) async fn submit(s: &Submission<'_>) -> Result<String, SlurmError> {
    let mut out = Command::new("sbatch");
    out.args(arguments(s))
        .env_clear()
        .envs(s.env.iter().map(|(k, v)| (k, v)));
    let out = run("sbatch", &mut out).await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `ID`, or `ID;CLUSTER` for a job sent to another
    // cluster, which `squeue` and `scancel` here would not see.
    let id = stdout.trim();
    if out.status.success() && id.contains(';') {
        let _ = cancel_on(id).await;
        return Err(SlurmError::Failed {
            program: "sbatch",
            stderr: format!(
                "job {id} went to another cluster (`--clusters`), which this executor does not follow: take the option out"
            ),
        });
    }
    if !out.status.success() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(failed("sbatch", &out));
    }
    Ok(id.to_string())
}

/// Stops job `id`. `gently`: SIGTERM to its `conductor __unit` only, which
/// stops its agents with the grace period and writes the outcome;
/// otherwise every process of the job, then SIGKILL after Slurm's
/// `KillWait`.
pub(crate) async fn cancel(id: &str, gently: bool) -> Result<(), SlurmError> {
    let mut cmd = Command::new("scancel");
    if gently {
        cmd.args(["--batch", "--signal=TERM"]);
    }
    let out = run("scancel", cmd.arg(id)).await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed("scancel", &out))
    }
}

/// Cancels `ID;CLUSTER`, a job submitted to another cluster.
async fn cancel_on(id: &str) -> Result<(), SlurmError> {
    let (job, cluster) = id.split_once(';').unwrap_or((id, ""));
    run(
        "scancel",
        Command::new("scancel").args(["--clusters", cluster, job]),
    )
    .await
    .map(|_| ())
}

/// How job `id` ended, as `scontrol` still tells it (Slurm forgets a job
/// `MinJobAge` after it ends): `COMPLETED`, `FAILED`, `NODE_FAIL`,
/// `CANCELLED`, `TIMEOUT`...; `None` when it cannot say.
pub(crate) async fn final_state(id: &str) -> Option<String> {
    let out = run(
        "scontrol",
        Command::new("scontrol").args(["show", "job", "--oneliner", id]),
    )
    .await
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("JobState="))
        .map(str::to_string)
}

/// Whether Slurm can be asked at all, for the check before an apply starts.
pub(crate) fn check() -> Result<(), SlurmError> {
    let out = std::process::Command::new("squeue")
        .args(["--me", "--noheader", "--format=%i"])
        .output()
        .map_err(|source| SlurmError::Spawn {
            program: "squeue",
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SlurmError::Failed {
            program: "squeue",
            stderr: last_line(&out.stderr),
        })
    }
}

/// The user's jobs, asked of `squeue` at most once every `every`.
#[derive(Debug)]
pub(crate) struct Queue {
    every: Duration,
    seen: tokio::sync::Mutex<Option<(Instant, HashMap<String, Queued>)>>,
}

impl Queue {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            seen: tokio::sync::Mutex::new(None),
        }
    }

    /// Job `id` as Slurm showed it at some time after `since` (when it
    /// was submitted); `None` once it has left the queue (ended). An error
    /// when `squeue` cannot be asked.
    pub(crate) async fn job(&self, id: &str, since: Instant) -> Result<Option<Queued>, SlurmError> {
        let mut seen = self.seen.lock().await;
        // Stamped when the listing came back: every unit that waited for
        // it while it was asked for takes it, however slow `squeue` is.
        let fresh = seen
            .as_ref()
            .is_some_and(|(at, _)| *at > since && at.elapsed() < self.every);
        if !fresh {
            let jobs = list().await?;
            *seen = Some((Instant::now(), jobs));
        }
        Ok(seen.as_ref().and_then(|(_, jobs)| jobs.get(id).cloned()))
    }
}

async fn list() -> Result<HashMap<String, Queued>, SlurmError> {
    // `--all`: jobs in partitions hidden from the user are listed too.
    let out = run(
        "squeue",
        Command::new("squeue").args(["--me", "--all", "--noheader", "--format=%i|%T|%N"]),
    )
    .await?;
    if !out.status.success() {
        return Err(failed("squeue", &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, '|');
            let id = parts.next()?.to_string();
            let state = parts.next()?.to_string();
            let node = parts.next().unwrap_or_default().to_string();
            Some((id, Queued { state, node }))
        })
        .collect())
}

/// Runs one of Slurm's commands to its end (killed if the apply is
/// dropped first); what it printed.
async fn run(
    program: &'static str,
    command: &mut Command,
) -> Result<std::process::Output, SlurmError> {
    command
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| SlurmError::Spawn { program, source })
}

fn failed(program: &'static str, out: &std::process::Output) -> SlurmError {
    SlurmError::Failed {
        program,
        stderr: last_line(&out.stderr),
    }
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no message)")
        .trim()
        .to_string()
}

/// `text` as one word of `sh`.
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_quotes_and_spaces_stays_one_word() {
        let q = quote("/a b/it's");
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {q}")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/a b/it's");
    }
}
