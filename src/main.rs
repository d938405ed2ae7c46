//! The `conductor` binary: everything happens in [`conductor::cli::run`],
//! after the one process-wide signal setting that must come first.

fn main() -> std::process::ExitCode {
    // Past a file-size limit a write should fail with EFBIG, which the
    // writers report, rather than SIGXFSZ killing conductor mid-record.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    std::process::ExitCode::from(conductor::cli::run())
}
