//! Replays the committed fuzz corpora (fuzz/corpus/<target>/) and crash
//! reproducers (fuzz/regressions/<target>/) through the same entry points
//! the cargo-fuzz targets call, so that `cargo test` checks every input the
//! fuzzers kept.

use std::path::Path;

/// Runs every file of `fuzz/corpus/<target>/` (which must hold some) and of
/// `fuzz/regressions/<target>/` (the crash reproducers, if any) through `run`.
fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = fuzz.join("corpus").join(target);
    let mut files = inputs(&corpus);
    assert!(!files.is_empty(), "{} holds no inputs", corpus.display());
    let regressions = fuzz.join("regressions").join(target);
    if regressions.exists() {
        files.extend(inputs(&regressions));
    }
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let caught = std::panic::catch_unwind(|| run(&data));
        assert!(caught.is_ok(), "{} fails {target}", file.display());
    }
}

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn toml_front_end() {
    replay("toml_front_end", conductor::fuzzing::toml_front_end);
}

#[test]
fn kdl_front_end() {
    replay("kdl_front_end", conductor::fuzzing::kdl_front_end);
}

#[test]
fn template_check() {
    replay("template_check", conductor::fuzzing::template_check);
}

#[test]
fn bus_reader() {
    replay("bus_reader", conductor::fuzzing::bus_reader);
}
