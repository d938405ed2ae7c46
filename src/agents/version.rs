//! Owns finding out which version of an agent CLI will run: `<program>
//! --version`, once per program per process and kept between processes by
//! binary (its path, size and modification time), the CLIs of one apply
//! asked at once, each bounded by a timeout so a CLI that waits for input
//! cannot hold up a plan. The version feeds the
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

/// How many CLIs are asked their version at once.
const WARM_AT_ONCE: usize = 8;

/// How long a `--version` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Probed versions, by program as written (and the folder, for a relative
/// path): every iteration records its agent's version, so a known one
/// must cost no PATH search. With a cache file, versions also outlive the
/// process, by binary: a CLI whose file (path, size, modification time) is
/// unchanged is not started again to ask (a Node CLI takes a second).
#[derive(Debug, Default)]
pub(crate) struct Versions {
    known: Mutex<HashMap<(String, PathBuf), String>>,
    /// The cache file and what it holds, when there is one.
    disk: Option<(PathBuf, Mutex<Disk>)>,
}

/// The cache file's content: by resolved binary path.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Disk {
    binaries: HashMap<PathBuf, Probed>,
    #[serde(skip)]
    dirty: bool,
}

/// One binary's version, and the file it was asked of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Probed {
    len: u64,
    modified_ns: u128,
    version: String,
}

impl Versions {
    /// Versions kept in `file` between processes too.
    pub(crate) fn cached_in(file: PathBuf) -> Self {
        let disk = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Disk>(&b).ok())
            .unwrap_or_default();
        Self {
            known: Mutex::default(),
            disk: Some((file, Mutex::new(disk))),
        }
    }

    /// The version of the CLI `program` resolves to, for kinds that have one;
    /// empty for `command` agents and programs that are not found.
    pub(crate) fn of(&self, kind: AgentKind, program: &str, path_var: &str, cwd: &Path) -> String {
        if super::kind::cli(kind).is_none() {
            return String::new();
        }
        let key = cache_key(program, cwd);
        if let Some(v) = self.lock_known().get(&key) {
            return v.clone();
        }
        // Not under the lock: probes of different CLIs run at once.
        let version = crate::process::resolve(program, path_var, cwd)
            .map_or_else(String::new, |p| self.of_binary(&p));
        self.lock_known().insert(key, version.clone());
        version
    }

    /// Asks each distinct CLI of `probes` (kind, program, PATH, folder) for
    /// its version at once, so that an apply of several CLIs waits for the
    /// slowest, not for their sum.
    pub(crate) fn warm(
        &self,
        probes: &[(AgentKind, String, String, PathBuf)],
        asking: &mut dyn FnMut(&[String]),
    ) {
        // One probe per key `of` caches by: a bare program name is the same
        // CLI in every workdir.
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<&(AgentKind, String, String, PathBuf)> = probes
            .iter()
            .filter(|p| super::kind::cli(p.0).is_some())
            .filter(|p| seen.insert(cache_key(&p.1, &p.3)))
            .collect();
        // Those that will be asked (not known, here or on disk) are said
        // first: a first probe of a Node CLI takes a second or two.
        let misses: Vec<String> = distinct
            .iter()
            .filter(|(_, program, path_var, cwd)| !self.known(program, path_var, cwd))
            .map(|p| p.1.clone())
            .collect();
        if !misses.is_empty() {
            asking(&misses);
        }
        // A few at a time: each is a process (a Node CLI, ~0.5 s).
        for batch in distinct.chunks(WARM_AT_ONCE) {
            std::thread::scope(|scope| {
                for (kind, program, path_var, cwd) in batch {
                    scope.spawn(move || self.of(*kind, program, path_var, cwd));
                }
            });
        }
    }

    /// Writes the cache file, when it has news.
    pub(crate) fn save(&self) {
        let Some((file, disk)) = &self.disk else {
            return;
        };
        let mut disk = disk
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !disk.dirty {
            return;
        }
        let written = serde_json::to_vec(&*disk)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::store::write_atomic_fast(file, &bytes));
        match written {
            Ok(()) => disk.dirty = false,
            Err(e) => tracing::debug!("cannot save {}: {e}", file.display()),
        }
    }

    /// Whether `program`'s version is known without asking it.
    fn known(&self, program: &str, path_var: &str, cwd: &Path) -> bool {
        if self.lock_known().contains_key(&cache_key(program, cwd)) {
            return true;
        }
        if self.disk.is_none() {
            return false;
        }
        // Not found on PATH: nothing to ask.
        crate::process::resolve(program, path_var, cwd).is_none_or(|p| self.on_disk(&p).is_some())
    }

    /// The version the cache file keeps for binary `path`, while the file
    /// is the one that was asked.
    fn on_disk(&self, path: &Path) -> Option<String> {
        let (_, disk) = self.disk.as_ref()?;
        let (len, modified_ns) = stat(path)?;
        disk.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .binaries
            .get(path)
            .filter(|p| p.len == len && p.modified_ns == modified_ns)
            .map(|p| p.version.clone())
    }

    fn lock_known(&self) -> std::sync::MutexGuard<'_, HashMap<(String, PathBuf), String>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The version of binary `path`: from the cache file while the file is
    /// the one that was asked, else asked now.
    fn of_binary(&self, path: &Path) -> String {
        if let Some(v) = self.on_disk(path) {
            return v;
        }
        let Some(version) = probe(path) else {
            // Not kept on disk: the next process asks again.
            return "unknown".into();
        };
        if let (Some((_, disk)), Some((len, modified_ns))) = (&self.disk, stat(path)) {
            let mut disk = disk
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            disk.binaries.insert(
                path.to_path_buf(),
                Probed {
                    len,
                    modified_ns,
                    version: version.clone(),
                },
            );
            disk.dirty = true;
        }
        version
    }
}

/// What `of` caches a version by: a bare program name is the same CLI in
/// every folder; a path is relative to its folder.
fn cache_key(program: &str, cwd: &Path) -> (String, PathBuf) {
    let folder = if program.contains('/') {
        cwd.to_path_buf()
    } else {
        PathBuf::new()
    };
    (program.to_string(), folder)
}

/// A binary's size and modification time (nanoseconds since the epoch):
/// while both hold, it is the binary that was asked.
fn stat(path: &Path) -> Option<(u64, u128)> {
    let m = std::fs::metadata(path).ok()?;
    let modified_ns = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Some((m.len(), modified_ns))
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
