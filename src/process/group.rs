//! Owns what a program is started with: its path, found on PATH unless it
//! names a file, and its standard streams, all on files (an agent's stdin
//! is prompt.md, its stdout and stderr the run's files, so output is on
//! disk as it comes and no pipe can fill). The keeper starts it as the
//! leader of its own process group.

use std::fs::File;
use std::path::{Path, PathBuf};

/// Where a program's standard streams go.
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
