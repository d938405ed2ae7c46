//! The `conductor` binary: everything happens in [`conductor::cli::run`].

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(conductor::cli::run())
}
