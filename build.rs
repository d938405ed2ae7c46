//! Links the `conductor` binary with packed relative relocations
//! (`-z pack-relative-relocs`, `DT_RELR`) where the toolchain supports them.
//! A position-independent binary of this size carries some 36,000 relative
//! relocations; packed, their table shrinks from 880 KB to 10 KB, which cut
//! the CPU time of a `conductor bus post` process by about 15 % (measured
//! with `perf stat`, docs/performance.md). Every command pays its start-up,
//! and `bus post` is run by agents in loops. The flag needs binutils 2.38
//! and glibc 2.36, so it is used only when a test link with it succeeds.

use std::io::Write;
use std::process::{Command, Stdio};

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.contains("linux-gnu") || !links_with(FLAG) {
        return;
    }
    println!("cargo:rustc-link-arg-bins={FLAG}");
}

/// Whether the C compiler (the linker driver rustc uses on Linux) links a
/// tiny program with `flag` without a complaint.
fn links_with(flag: &str) -> bool {
    let out_dir = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from);
    let Some(out) = out_dir.map(|d| d.join("relr-probe")) else {
        return false;
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let Ok(mut child) = Command::new(cc)
        .args(["-x", "c", "-", "-o"])
        .arg(&out)
        .arg(flag)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"int main(void) { return 0; }\n");
    }
    child
        .wait_with_output()
        .is_ok_and(|o| o.status.success() && o.stderr.is_empty())
        && Command::new(&out).status().is_ok_and(|s| s.success())
}
