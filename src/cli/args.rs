//! The command-line interface, declared with clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A declarative workflow engine for AI coding agents.
#[derive(Debug, Parser)]
#[command(name = "conductor", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workflow files and report every problem (exit 2 if any).
    Validate(ValidateArgs),
    /// Show what a workflow would run, without running anything.
    Plan(PlanArgs),
    /// Print the JSON Schema of the workflow format.
    Schema,
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Workflow files (.toml or .kdl).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Set a param: NAME=VALUE (a TOML value, else a string). Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The workflow file (.toml or .kdl).
    pub file: PathBuf,
    /// Set a param: NAME=VALUE (a TOML value, else a string). Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Print the plan as JSON.
    #[arg(long, conflicts_with = "dot")]
    pub json: bool,
    /// Print the plan as Graphviz.
    #[arg(long)]
    pub dot: bool,
    /// Include each instance's rendered first-iteration prompt.
    #[arg(long)]
    pub show_prompts: bool,
}
