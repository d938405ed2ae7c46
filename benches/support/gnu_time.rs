//! Peak RSS of a whole command as GNU time reports it (`/usr/bin/time -f
//! %M`): the maximum over the process and every child it waited for (the
//! keeper, the agents), not their sum. Shared by the benches that print it.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// Runs `cmd` under GNU time, writing its report to `report`: how GNU time
/// exited (as the command did), and the peak; `None` where GNU time is not
/// installed.
pub(crate) fn peak_rss_kib(cmd: &Command, report: &Path) -> Option<(ExitStatus, Option<u64>)> {
    let gnu_time = Path::new("/usr/bin/time");
    if !gnu_time.exists() {
        return None;
    }
    let mut timed = Command::new(gnu_time);
    timed
        .args(["-f", "%M", "-o"])
        .arg(report)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let status = timed.status().expect("GNU time runs");
    // A failed command adds a "Command exited with non-zero status" line first.
    let kib = std::fs::read_to_string(report)
        .ok()
        .and_then(|r| r.lines().last()?.trim().parse().ok());
    Some((status, kib))
}
