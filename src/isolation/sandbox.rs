//! Owns the sandbox an isolated agent may run in (docs/isolation.md,
//! "Sandboxes"): bubblewrap with the whole host read-only, the instance's
//! worktree and task folder writable at their own paths (the worktree's
//! `.git` file not: it tells conductor's git where the repository is), a
//! private `/tmp` and `/run` (the host's daemons' sockets live there),
//! `/dev` and `/proc` of its own, a session of its own (no typing into the
//! terminal), no variables pointing at the host's agents, and with
//! `network = false` a network namespace of its own, so that not even
//! 127.0.0.1 reaches the host. A machine without bubblewrap is refused
//! before anything runs: never a silent run on the host.

use std::path::{Path, PathBuf};

/// bubblewrap's program.
pub(crate) const PROGRAM: &str = "bwrap";

/// How to get it.
pub(crate) const INSTALL_HINT: &str = "install bubblewrap (`apt install bubblewrap`, `dnf install bubblewrap`), or set `isolation = \"worktree\"` to run without a sandbox";

/// What one sandboxed run may touch.
#[derive(Debug)]
pub(crate) struct Sandbox<'a> {
    /// Writable, at their own paths: the worktree and the task folder.
    pub writable: &'a [&'a Path],
    /// Read-only again inside those: the worktree's `.git` file.
    pub read_only: &'a [&'a Path],
    /// Where the agent starts.
    pub cwd: &'a Path,
    pub network: bool,
}

impl Sandbox<'_> {
    /// bubblewrap's arguments to run `program` with `args` inside.
    pub(crate) fn args(&self, program: &Path, args: &[String]) -> Vec<String> {
        let mut out: Vec<String> = [
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/run",
            // Name resolution on hosts whose resolv.conf points there.
            "--ro-bind-try",
            "/run/systemd/resolve",
            "/run/systemd/resolve",
            "--new-session",
            "--unshare-ipc",
            "--die-with-parent",
            "--unsetenv",
            "DBUS_SESSION_BUS_ADDRESS",
            "--unsetenv",
            "SSH_AUTH_SOCK",
            "--unsetenv",
            "DOCKER_HOST",
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        if !self.network {
            out.push("--unshare-net".into());
        }
        // After `/tmp` and `/dev`: a worktree or task folder below them
        // is bound over the private ones.
        for dir in self.writable {
            let d = dir.display().to_string();
            out.extend(["--bind".to_string(), d.clone(), d]);
        }
        for path in self.read_only {
            let p = path.display().to_string();
            out.extend(["--ro-bind".to_string(), p.clone(), p]);
        }
        out.extend([
            "--chdir".to_string(),
            self.cwd.display().to_string(),
            "--".to_string(),
            program.display().to_string(),
        ]);
        out.extend(args.iter().cloned());
        out
    }
}

/// bubblewrap on `path_var`, when it is there.
pub(crate) fn find(path_var: &str, cwd: &Path) -> Option<PathBuf> {
    crate::process::resolve(PROGRAM, path_var, cwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_read_only_and_what_is_writable_comes_after_the_private_tmp() {
        let wt = Path::new("/tmp/x/wt");
        let task = Path::new("/runs/p/task-1");
        let dot_git = Path::new("/tmp/x/wt/.git");
        let sb = Sandbox {
            writable: &[wt, task],
            read_only: &[dot_git],
            cwd: Path::new("/tmp/x/wt/sub"),
            network: false,
        };
        let args = sb.args(Path::new("/usr/bin/agent"), &["-p".to_string()]);
        let joined = args.join(" ");
        assert!(joined.starts_with("--ro-bind / / "), "{joined}");
        assert!(joined.contains("--unshare-net"), "{joined}");
        let tmp = joined.find("--tmpfs /tmp").expect("a private /tmp");
        let bind = joined
            .find("--bind /tmp/x/wt /tmp/x/wt")
            .expect("the worktree");
        assert!(tmp < bind, "{joined}");
        let git = joined
            .find("--ro-bind /tmp/x/wt/.git /tmp/x/wt/.git")
            .expect("the .git file read-only");
        assert!(bind < git, "{joined}");
        assert!(joined.contains("--tmpfs /run") && joined.contains("--new-session"));
        assert!(
            joined.ends_with("--chdir /tmp/x/wt/sub -- /usr/bin/agent -p"),
            "{joined}"
        );
        let open = Sandbox {
            network: true,
            ..sb
        };
        assert!(
            !open
                .args(Path::new("/a"), &[])
                .contains(&"--unshare-net".to_string())
        );
    }
}
