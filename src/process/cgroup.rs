//! Owns cgroup v2 containment (docs/security.md, "Containment"): where the
//! unified hierarchy is and which cgroup conductor runs in; the keeper's own
//! cgroup below that one, made and probed once per keeper (a process must
//! be able to move into it, and `cgroup.kill` must exist: Linux 5.14); one
//! cgroup per run, which the keeper waits in before the run starts so that
//! every process the run starts is born into it and cannot leave it without
//! privileges; killing a run's cgroup at once; and removing what keepers
//! that died left behind.
//!
//! No controller is enabled: conductor limits nothing, it only contains, so
//! the cgroups it makes are allowed next to processes in the one it is in.

use std::io;
use std::path::{Path, PathBuf};

/// Why cgroups cannot contain runs here.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    #[error("no cgroup v2 hierarchy is mounted")]
    NoHierarchy,
    #[error("this process's cgroup v2 path is unknown (/proc/self/cgroup)")]
    NoOwnCgroup,
    #[error("cannot create a cgroup under {}: {source}", .dir.display())]
    Create { dir: PathBuf, source: io::Error },
    #[error("cannot move a process into {}: {source} (the cgroup is not delegated to this user)", .dir.display())]
    Move { dir: PathBuf, source: io::Error },
    #[error("{} has no cgroup.kill (Linux 5.14 or later is needed)", .dir.display())]
    NoKill { dir: PathBuf },
}

/// The keeper's cgroup: `<conductor's cgroup>/conductor-<pid>-<start>`.
#[derive(Debug)]
pub(crate) struct Base {
    /// The cgroup conductor is in, where the keeper goes back when it ends.
    home: PathBuf,
    dir: PathBuf,
}

/// One run's cgroup.
#[derive(Debug)]
pub(crate) struct RunCgroup {
    dir: PathBuf,
}

impl Base {
    /// Makes the keeper's cgroup and checks that it can contain, after
    /// clearing what dead keepers left in conductor's cgroup. The check
    /// leaves this process in the first run's cgroup, where the next run
    /// will be born: moving a process costs a grace period of the kernel
    /// when none was moved lately (docs/performance.md), so the keeper moves
    /// once per start, after it, instead of in and out before it.
    pub(crate) fn create() -> Result<(Self, RunCgroup), CgroupError> {
        let mount = mount_point().ok_or(CgroupError::NoHierarchy)?;
        let own = own_cgroup().ok_or(CgroupError::NoOwnCgroup)?;
        let home = mount.join(own.trim_start_matches('/'));
        clear_dead(&home);
        let me = std::process::id();
        let start = super::tree::start_ticks(i32::try_from(me).unwrap_or(0)).unwrap_or(0);
        let dir = home.join(format!("conductor-{me}-{start}"));
        std::fs::create_dir(&dir).map_err(|source| CgroupError::Create {
            dir: home.clone(),
            source,
        })?;
        let base = Self { home, dir };
        match base.probe() {
            Ok(first) => Ok((base, first)),
            Err(e) => {
                base.close(None);
                Err(e)
            }
        }
    }

    fn probe(&self) -> Result<RunCgroup, CgroupError> {
        let first = self.run(0).map_err(|source| CgroupError::Create {
            dir: self.dir.clone(),
            source,
        })?;
        if !first.dir.join("cgroup.kill").exists() {
            return Err(CgroupError::NoKill { dir: first.dir });
        }
        first.enter().map_err(|source| CgroupError::Move {
            dir: first.dir.clone(),
            source,
        })?;
        Ok(first)
    }

    /// Where runs' cgroups are made.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// A new cgroup for a run, the `n`th made.
    pub(crate) fn run(&self, n: u64) -> io::Result<RunCgroup> {
        let dir = self.dir.join(format!("run-{n}"));
        std::fs::create_dir(&dir)?;
        Ok(RunCgroup { dir })
    }

    /// Moves this process back where it came from.
    pub(crate) fn leave(&self) -> io::Result<()> {
        std::fs::write(self.home.join("cgroup.procs"), b"0")
    }

    /// Removes the keeper's cgroup (its runs' are killed and removed first),
    /// after moving this process home from `parked`, the run's cgroup it
    /// waits in (or could not leave). Should that move fail, `parked` is left
    /// alone: killing it would kill this process.
    pub(crate) fn close(&self, parked: Option<RunCgroup>) {
        let stay = parked.filter(|_| self.leave().is_err()).map(|p| p.dir);
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.path().is_dir() && Some(e.path()) != stay {
                    let run = RunCgroup { dir: e.path() };
                    let _ = run.kill();
                    let _ = run.remove();
                }
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl RunCgroup {
    /// Moves this process into it, so that what it starts next is born
    /// there.
    pub(crate) fn enter(&self) -> io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), b"0")
    }

    /// The processes in it now.
    pub(crate) fn procs(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|t| {
                t.split_ascii_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// SIGKILL to every process in it, at once: none can fork its way out.
    pub(crate) fn kill(&self) -> io::Result<()> {
        std::fs::write(self.dir.join("cgroup.kill"), b"1")
    }

    /// Removes it; fails while a process is still in it.
    pub(crate) fn remove(&self) -> io::Result<()> {
        std::fs::remove_dir(&self.dir)
    }
}

/// Kills and removes what dead keepers left in conductor's cgroup, for a
/// keeper that contains without cgroups: it makes none, and so never pays
/// for moving itself into one (docs/performance.md, issue 18).
pub(crate) fn clear_dead_keepers() {
    if let (Some(mount), Some(own)) = (mount_point(), own_cgroup()) {
        clear_dead(&mount.join(own.trim_start_matches('/')));
    }
}

/// Where the unified (v2) hierarchy is mounted, from /proc/self/mountinfo.
fn mount_point() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        // `ID PARENT MAJ:MIN ROOT MOUNT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER`
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        left.split(' ').nth(4).map(PathBuf::from)
    })
}

/// This process's cgroup v2 path, from /proc/self/cgroup (`0::PATH`).
fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// Kills and removes the cgroups of keepers that are gone (conductor and
/// its keeper were both killed): their processes are no run's any more.
fn clear_dead(home: &Path) {
    let Ok(entries) = std::fs::read_dir(home) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((pid, start)) = name
            .to_str()
            .and_then(|n| n.strip_prefix("conductor-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(p, s)| Some((p.parse::<i32>().ok()?, s.parse::<u64>().ok()?)))
        else {
            continue;
        };
        if super::tree::start_ticks(pid) == Some(start) {
            continue;
        }
        Base {
            home: home.to_path_buf(),
            dir: e.path(),
        }
        .close(None);
    }
}
