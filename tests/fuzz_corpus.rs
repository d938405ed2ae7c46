//! Replays the committed fuzz corpora (fuzz/corpus/<target>/) through the
//! same entry points the cargo-fuzz targets call, so that every input the
//! fuzzers kept, crash reproducers included, is checked by `cargo test`.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let caught = std::panic::catch_unwind(|| run(&data));
        assert!(caught.is_ok(), "{} fails {target}", file.display());
    }
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
