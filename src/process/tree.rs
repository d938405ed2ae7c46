//! Owns reading the process tree from `/proc` (docs/security.md,
//! "Containment"): a process's parent, group, state and start time, the
//! children of a process, and whether a process's environment carries a
//! run's tag. The keeper finds a run's processes with it where no cgroup
//! holds them; it reads only the keeper's own subtree, never every process
//! of the machine, so what it costs grows with the agents' processes.

use std::io::Read;

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub ppid: i32,
    pub pgrp: i32,
    /// Exited, not yet reaped: it runs nothing and cannot be signalled.
    pub zombie: bool,
    /// Start time in clock ticks after boot: a pid and this name one process.
    pub start: u64,
}

/// The stat line of `pid`, if it still exists.
pub(crate) fn stat(pid: i32) -> Option<Stat> {
    // One read: the line is a few hundred bytes, and `read_to_string` would
    // grow its buffer from 32 bytes a read at a time.
    let mut buf = [0u8; 1024];
    let n = std::fs::File::open(format!("/proc/{pid}/stat"))
        .and_then(|mut f| f.read(&mut buf))
        .ok()?;
    parse_stat(std::str::from_utf8(buf.get(..n)?).ok()?)
}

fn parse_stat(line: &str) -> Option<Stat> {
    // The command name may hold spaces and parentheses: fields start after
    // the last `)`, with the state first.
    let rest = line.get(line.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let start = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        ppid,
        pgrp,
        zombie: matches!(state, "Z" | "X"),
        start,
    })
}

/// The start time of `pid` in clock ticks after boot.
pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start)
}

/// The children of `pid` (of every thread of it).
pub(crate) fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        out.extend(
            text.split_ascii_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out
}

/// Every live (not zombie) process under `roots`, the roots included,
/// each once.
pub(crate) fn subtree(roots: impl IntoIterator<Item = i32>) -> Vec<i32> {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<i32> = roots.into_iter().collect();
    let mut out = Vec::new();
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        match stat(pid) {
            Some(s) if !s.zombie => out.push(pid),
            Some(_) => {}
            None => continue,
        }
        stack.extend(children(pid));
    }
    out
}

/// Whether `pid`'s environment (as it was when it started its program)
/// holds the entry `tag` (`NAME=value`).
pub(crate) fn has_tag(pid: i32, tag: &str) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    environ.split(|b| *b == 0).any(|e| e == tag.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_after_the_command_name() {
        let line =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 1,
                pgrp: 4242,
                zombie: false,
                start: 987_654
            })
        );
        let zombie = "7 (sh) Z 3 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert!(parse_stat(zombie).is_some_and(|s| s.zombie));
    }

    #[test]
    fn a_child_is_in_its_parents_subtree_and_tagged_by_its_environment() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("CONDUCTOR_TEST_TAG", "t-1")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        let seen = subtree([me]);
        // The kernel shows a new program's environment only once its exec
        // has set it up, a moment after the parent goes on.
        let mut tagged = false;
        for _ in 0..500 {
            tagged = has_tag(pid, "CONDUCTOR_TEST_TAG=t-1");
            if tagged {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let other = has_tag(pid, "CONDUCTOR_TEST_TAG=t-2");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen.contains(&me) && seen.contains(&pid), "{seen:?}");
        assert!(tagged);
        assert!(!other);
        assert_eq!(stat(pid), None, "a reaped process is gone");
    }
}
