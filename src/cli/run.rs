//! Owns running conductor from its arguments: parsing them (clap), the
//! tracing set-up, dispatch to each subcommand, and its exit code.

use clap::{CommandFactory, Parser};

use super::args::{Cli, Command};
use super::{apply, bus_cmd, check, gc, logs, serve, status, watch};
use crate::exit_code;

/// Runs conductor with the process's arguments; returns the exit code.
pub fn run() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit_code::INVALID
            } else {
                exit_code::OK
            };
        }
    };
    init_tracing();
    match cli.command {
        Command::Validate(a) => check::validate(&a),
        Command::Plan(a) => check::plan(&a),
        Command::Apply(a) => apply::apply(&a),
        Command::Watch(a) => watch::watch(&a),
        Command::Status(a) => status::status(&a),
        Command::Logs(a) => logs::logs(&a),
        Command::Keeper { containment } => crate::process::keeper::server::run(containment),
        Command::Unit { spec } => crate::runner::run_unit(&spec),
        Command::Schema => {
            print!("{}", crate::schema::workflow_schema_text());
            exit_code::OK
        }
        Command::Bus(cmd) => bus_cmd::run(&cmd),
        Command::Serve(a) => serve::serve(&a),
        Command::Gc(a) => gc::gc(&a),
        Command::FakeAgent(args) => super::fake_agent::run(&args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "conductor",
                &mut std::io::stdout(),
            );
            exit_code::OK
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
