//! Every file in `tests/fixtures/invalid/` is a small, realistic workflow with
//! one deliberate problem (sometimes two, to show that every problem is
//! reported in one run). `conductor validate` must reject each one with exit
//! code 2, a stable `conductor::` code, a span in the file, and no panic; the
//! full report is pinned by an insta snapshot. The TOML and KDL twin of each
//! error class must report the same codes. Files in subfolders of the fixture
//! folder (such as `lib/`) are helpers, not fixtures.
//!
//! After changing a diagnostic on purpose, review the new reports with
//! `INSTA_UPDATE=always cargo test --test integration invalid` and read the
//! changed `.snap` files before committing them.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;

use crate::support::{root, run, stderr};
use crate::test_builder::Test;

/// Exit code of `validate` for an invalid workflow.
const INVALID: i32 = 2;

/// Fixtures that exist in one syntax only: a syntax error is specific to it.
const ONE_SYNTAX: &[&str] = &["toml_syntax.toml", "kdl_syntax.kdl"];

/// Error classes that exist in one syntax only.
const DIFFERENT_CODES: &[&str] = &["toml_syntax", "kdl_syntax"];

const FIXTURES: &str = "tests/fixtures/invalid";

/// One fixture and what `conductor validate` made of it.
struct Checked {
    /// File name, such as `unknown_key.toml`.
    file: String,
    /// Path relative to the repository root, as passed to conductor.
    rel: String,
    output: Output,
}

impl Checked {
    fn stderr(&self) -> String {
        stderr(&self.output)
    }

    /// The stem shared by the TOML and KDL twin: `unknown_key`.
    fn class(&self) -> &str {
        self.file
            .rsplit_once('.')
            .map_or(self.file.as_str(), |(stem, _)| stem)
    }

    /// The snapshot name: the file name with `.` as `_`.
    fn snapshot_name(&self) -> String {
        self.file.replace('.', "_")
    }
}

/// The fixture files (not folders), sorted by name.
fn fixture_files() -> Vec<String> {
    let dir = root().join(FIXTURES);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("toml" | "kdl"))
        })
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    files.sort();
    files
}

/// Runs `conductor validate` once per fixture; shared by every test here.
fn checked() -> &'static [Checked] {
    static CHECKED: OnceLock<Vec<Checked>> = OnceLock::new();
    CHECKED.get_or_init(|| {
        fixture_files()
            .into_iter()
            .map(|file| {
                let rel = format!("{FIXTURES}/{file}");
                let output = run(&["validate", &rel]);
                Checked { file, rel, output }
            })
            .collect()
    })
}

/// The `conductor::xxx` codes in a report: miette prints each diagnostic's
/// code alone on the line above its message.
fn codes(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.strip_prefix("conductor::").is_some_and(|c| {
                !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')
            })
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn there_are_fixtures_for_every_error_class_in_both_syntaxes() {
    let files = fixture_files();
    assert!(
        files.len() >= 26,
        "expected at least 26 invalid fixtures, found {}: {files:?}",
        files.len()
    );
    for f in &files {
        if ONE_SYNTAX.contains(&f.as_str()) {
            continue;
        }
        let twin = match f.rsplit_once('.') {
            Some((stem, "toml")) => format!("{stem}.kdl"),
            Some((stem, "kdl")) => format!("{stem}.toml"),
            _ => unreachable!("only .toml and .kdl files are listed"),
        };
        assert!(
            files.contains(&twin),
            "{f} has no twin {twin} in {FIXTURES}"
        );
    }
    for f in ONE_SYNTAX {
        assert!(files.iter().any(|g| g == f), "{FIXTURES}/{f} is missing");
    }
}

#[test]
fn every_invalid_fixture_is_rejected_with_a_code_and_a_span() {
    let mut problems = Vec::new();
    for c in checked() {
        let err = c.stderr();
        let code = c.output.status.code();
        if code != Some(INVALID) {
            problems.push(format!("{}: exit code {code:?}, expected {INVALID}", c.rel));
        }
        if codes(&err).is_empty() {
            problems.push(format!("{}: no `conductor::` code in stderr", c.rel));
        }
        if !err.contains(&format!("╭─[{}:", c.rel)) {
            problems.push(format!(
                "{}: no `╭─[{}:LINE:COL]` location line in stderr",
                c.rel, c.rel
            ));
        }
        if err.contains("panicked") {
            problems.push(format!("{}: conductor panicked", c.rel));
        }
        if problems.last().is_some_and(|p| p.starts_with(&c.rel)) {
            problems.push(format!("--- stderr of {} ---\n{err}", c.rel));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn invalid_fixture_reports_match_their_snapshots() {
    for c in checked() {
        let text = c.stderr();
        insta::with_settings!({
            description => format!("conductor validate {}", c.rel),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(c.snapshot_name(), text);
        });
    }
}

#[test]
fn toml_and_kdl_twins_report_the_same_codes() {
    let all = checked();
    let mut pairs = 0;
    let mut problems = Vec::new();
    for toml in all
        .iter()
        .filter(|c| Path::new(&c.file).extension().is_some_and(|e| e == "toml"))
    {
        if DIFFERENT_CODES.contains(&toml.class()) {
            continue;
        }
        let Some(kdl) = all.iter().find(|c| {
            c.class() == toml.class() && Path::new(&c.file).extension().is_some_and(|e| e == "kdl")
        }) else {
            continue;
        };
        pairs += 1;
        let (a, b) = (codes(&toml.stderr()), codes(&kdl.stderr()));
        if a != b {
            problems.push(format!(
                "{} reports {a:?} but {} reports {b:?}\n--- {} ---\n{}--- {} ---\n{}",
                toml.file,
                kdl.file,
                toml.file,
                toml.stderr(),
                kdl.file,
                kdl.stderr()
            ));
        }
    }
    assert!(
        pairs >= 20,
        "expected at least 20 TOML/KDL twin pairs, found {pairs}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

const PARAMS: &str = "tests/fixtures/valid/params.toml";

#[test]
fn the_params_fixture_is_valid() {
    Test::in_repo().args(["validate", PARAMS]).run();
}

#[test]
fn set_of_a_string_for_an_int_param_is_a_param_type_error() {
    Test::in_repo()
        .args(["validate", PARAMS, "--set", "n=abc"])
        .status(INVALID)
        .stderr_has("conductor::param_type")
        .stderr_has("param `n` is of type int but `--set` gave a string")
        // Points into the command line, at the value.
        .stderr_has("╭─[<command line>:1:9]")
        .stderr_has("expected int")
        .stderr_has("help:")
        .stderr_has("such as 3")
        // The declaration is shown too, from the workflow file.
        .stderr_has("╭─[tests/fixtures/valid/params.toml:")
        // The rejected value does not also make `params.n` undefined.
        .stderr_lacks("undefined_variable")
        .stderr_lacks("panicked")
        .run();
}

#[test]
fn set_of_an_unknown_param_is_an_unknown_param_error() {
    Test::in_repo()
        .args(["validate", PARAMS, "--set", "nope=1"])
        .status(INVALID)
        .stderr_has("conductor::unknown_param")
        .stderr_has("`nope` is not a param of this workflow")
        .stderr_has("╭─[<command line>:1:7]")
        .stderr_has("help: this workflow's params are: `n`, `topic`")
        .stderr_lacks("panicked")
        .run();
}

#[test]
fn set_of_a_near_miss_param_name_suggests_the_param() {
    Test::in_repo()
        .args(["validate", PARAMS, "--set", "topc=flakes"])
        .status(INVALID)
        .stderr_has("conductor::unknown_param")
        .stderr_has("help: did you mean `topic`?")
        .run();
}
