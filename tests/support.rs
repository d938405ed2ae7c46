//! Helpers shared by the test modules: the binary under test, run from the
//! repository root with colours off and a fixed width, as CI sees it.

use std::path::{Path, PathBuf};
use std::process::Output;

/// The repository root (tests run with it as the current directory).
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `conductor` binary cargo built for the tests.
pub(crate) fn conductor() -> assert_cmd::Command {
    let mut cmd =
        assert_cmd::Command::cargo_bin("conductor").expect("the conductor binary is built");
    cmd.current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("COLUMNS")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs conductor with `args` and returns its output.
pub(crate) fn run(args: &[&str]) -> Output {
    conductor().args(args).output().expect("conductor runs")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every workflow file (`.toml`, `.kdl`) directly in `dir` and in its
/// subfolders one level down, except library folders and sub-workflows.
pub(crate) fn workflow_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if !matches!(
                    p.file_name().and_then(|n| n.to_str()),
                    Some("prompts" | "lib" | "partials" | "roles")
                ) {
                    stack.push(p);
                }
            } else if matches!(p.extension().and_then(|x| x.to_str()), Some("toml" | "kdl")) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The `--set` arguments a committed workflow needs to validate or plan:
/// the session workflow has no default for the repository its agents work
/// on (they skip permission prompts), so tests name one.
pub(crate) fn required_params(file: &Path) -> Vec<String> {
    if file.to_string_lossy().contains("workflows/session.") {
        vec!["--set".to_string(), "repo=../conductor-loop".to_string()]
    } else {
        Vec::new()
    }
}
