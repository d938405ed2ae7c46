//! What isolation costs an instance (docs/performance.md, "Isolation"): a
//! whole `conductor apply` of one isolated node whose agent is `true`,
//! against the same node not isolated, on a repository of 10,000 files
//! (`CONDUCTOR_BENCH_WORKTREE_FILES`), for a worktree made afresh and for one
//! made ready again (`--force`: reset to the base); beside them, git's own
//! `git worktree add` of that repository, which is most of the fresh cost.
//! Each figure is the median of 5 (`CONDUCTOR_BENCH_SAMPLES`). The
//! repository is made under `TMPDIR`: run it with `TMPDIR=/dev/shm` and
//! without to compare tmpfs with the disk.

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set itself up has nothing to measure"
)]
#![expect(
    clippy::print_stdout,
    reason = "the figures are printed for docs/performance.md"
)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONDUCTOR: &str = env!("CARGO_BIN_EXE_conductor");

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=bench", "-c", "user.email=bench@localhost"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?}");
}

/// How long `cmd` takes; it must succeed.
fn time(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("it runs");
    let took = start.elapsed();
    assert!(status.success(), "{cmd:?}");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn apply(repo: &Path, file: &str, root: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(CONDUCTOR);
    cmd.current_dir(repo)
        .args(["apply", file, "--root"])
        .arg(root)
        .args(extra);
    cmd
}

fn main() {
    // `cargo test --benches`: nothing here is a pass/fail test.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let files = env_number("CONDUCTOR_BENCH_WORKTREE_FILES", 10_000);
    let samples = env_number("CONDUCTOR_BENCH_SAMPLES", 5);
    let base = tempfile::tempdir().expect("a temp dir");
    let repo = base.path().join("repo");
    // 100 folders of files of a few lines, as a source tree.
    for i in 0..files {
        let dir = repo.join(format!("d{:03}", i % 100));
        std::fs::create_dir_all(&dir).expect("a folder");
        std::fs::write(
            dir.join(format!("f{i}.rs")),
            format!("// file {i}\nfn f{i}() {{}}\n"),
        )
        .expect("a file");
    }
    let flow = |isolation: &str| {
        format!(
            "version = 1\nname = \"bench\"\n[agents.t]\nkind = \"command\"\ncommand = [\"true\"]\n[nodes.n]\nagent = \"t\"\nprompt = \"x\"\nisolation = \"{isolation}\"\nstop = {{ exit_zero = true, max_iterations = 1 }}\n"
        )
    };
    std::fs::write(repo.join("plain.toml"), flow("none")).expect("a workflow");
    std::fs::write(repo.join("isolated.toml"), flow("worktree")).expect("a workflow");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "a tree"]);
    let worktree = repo.join(".git/conductor/worktrees/bench/n");
    let (mut plain, mut fresh, mut again, mut git_add) = (vec![], vec![], vec![], vec![]);
    for k in 0..samples {
        let root = base.path().join(format!("runs-{k}"));
        plain.push(time(apply(&repo, "plain.toml", &root, &["--force"])));
        // A fresh worktree: the last one and its branch removed (untimed).
        if worktree.exists() {
            git(
                &repo,
                &["worktree", "remove", "--force", &worktree.to_string_lossy()],
            );
            git(&repo, &["branch", "-D", "conductor/bench/n"]);
        }
        fresh.push(time(apply(&repo, "isolated.toml", &root, &["--force"])));
        // The same worktree made ready again for a new run.
        again.push(time(apply(&repo, "isolated.toml", &root, &["--force"])));
        let reference = base.path().join(format!("git-{k}"));
        let mut add = Command::new("git");
        add.arg("-C")
            .arg(&repo)
            .args(["worktree", "add", "-q", "--detach"])
            .arg(&reference);
        git_add.push(time(add));
        git(
            &repo,
            &[
                "worktree",
                "remove",
                "--force",
                &reference.to_string_lossy(),
            ],
        );
    }
    let (plain, fresh, again, git_add) =
        (median(plain), median(fresh), median(again), median(git_add));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "worktree: {files} files under {}: apply not isolated {:.1} ms; isolated, fresh worktree {:.1} ms (+{:.1} ms); isolated, worktree made ready again {:.1} ms (+{:.1} ms); git worktree add alone {:.1} ms; medians of {samples}",
        base.path().display(),
        ms(plain),
        ms(fresh),
        ms(fresh) - ms(plain),
        ms(again),
        ms(again) - ms(plain),
        ms(git_add),
    );
}
