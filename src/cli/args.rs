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
    /// Run a workflow: every node a Ralph loop, recorded to the run store and the bus.
    Apply(ApplyArgs),
    /// Apply a workflow, then apply again whenever it, its templates or a
    /// node's inputs change (only what the change invalidates re-runs).
    Watch(WatchArgs),
    /// Show the latest apply's instances, states, iterations and stop reasons.
    Status(StatusArgs),
    /// Print an instance's agent output (the latest run), or follow it live.
    Logs(LogsArgs),
    /// Print the JSON Schema of the workflow format.
    Schema,
    /// Post to and read the file bus.
    #[command(subcommand)]
    Bus(BusCommand),
    /// Serve the web page and HTTP API over the run store (docs/ui.md, docs/api.md).
    Serve(ServeArgs),
    /// Remove isolated instances' worktrees that hold no unsaved work; keep
    /// the others and say why (docs/isolation.md).
    Gc(GcArgs),
    /// The fake agent the tests run (not for users).
    #[command(name = "__fake-agent", hide = true)]
    FakeAgent(super::fake_agent::FakeAgent),
    /// Starts and contains every process of an apply (not for users).
    #[command(name = "__keeper", hide = true)]
    Keeper {
        #[arg(long, value_enum)]
        containment: crate::process::Containment,
    },
    /// Runs one unit on a worker (`--executor slurm`; not for users).
    #[command(name = "__unit", hide = true)]
    Unit {
        /// The unit's `unit.json`, in its task folder.
        spec: PathBuf,
    },
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `conductor bus ...`
#[derive(Debug, Subcommand)]
pub enum BusCommand {
    /// Append a message to a bus.
    Post(BusPostArgs),
    /// Print the messages of a bus.
    Read(BusReadArgs),
}

/// Which bus: `--bus FILE`, else `--project` (and `--task`) under the runs
/// root, else `$JRUN_MESSAGE_BUS`.
#[derive(Debug, Args)]
pub struct BusLocation {
    /// The bus file itself.
    #[arg(long, value_name = "FILE")]
    pub bus: Option<PathBuf>,
    /// The project (its PROJECT-MESSAGE-BUS.md, or with --task that task's bus).
    #[arg(long)]
    pub project: Option<String>,
    /// The task, within --project.
    #[arg(long)]
    pub task: Option<String>,
    #[arg(
        long,
        value_name = "DIR",
        help = "The runs root [default: $CONDUCTOR_ROOT, else .conductor/runs]"
    )]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BusPostArgs {
    #[command(flatten)]
    pub location: BusLocation,
    /// The message type, such as PROGRESS, FACT, DECISION, ERROR or QUESTION.
    #[arg(long = "type", default_value = "INFO")]
    pub kind: String,
    /// The message body [default: read from stdin].
    #[arg(long, allow_hyphen_values = true)]
    pub body: Option<String>,
    #[arg(long, help = "The run the message is about [default: $JRUN_ID]")]
    pub run: Option<String>,
    /// Metadata, KEY=VALUE. Repeatable.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Post the message this many times, numbering the bodies (for tests).
    #[arg(long, hide = true, default_value_t = 1)]
    pub repeat: u32,
}

#[derive(Debug, Args)]
pub struct BusReadArgs {
    #[command(flatten)]
    pub location: BusLocation,
    /// Only the messages after the one with this id.
    #[arg(long, value_name = "MSG_ID")]
    pub since: Option<String>,
    /// Only the last N messages.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Keep printing new messages as they are posted.
    #[arg(long, short)]
    pub follow: bool,
    /// One JSON object per message, per line.
    #[arg(long)]
    pub json: bool,
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
    /// Show how each instance would be submitted to this executor
    /// [default: the workflow's `[executor] kind`, else local].
    #[arg(long, value_enum, env = "CONDUCTOR_EXECUTOR")]
    pub executor: Option<PlanExecutor>,
    /// An argument for every `sbatch` (`--executor slurm`). Repeatable.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Write a Kubernetes Job manifest per instance to DIR (`--executor
    /// kubernetes`; docs/distributed.md).
    #[arg(long, value_name = "DIR", requires = "image")]
    pub manifests: Option<PathBuf>,
    /// The image the Jobs run: `conductor` and the agents' CLIs on its PATH.
    #[arg(long, value_name = "IMAGE", requires = "manifests")]
    pub image: Option<String>,
    /// The Jobs' namespace [default: the one they are applied in].
    #[arg(long, value_name = "NAME", requires = "manifests")]
    pub namespace: Option<String>,
    /// The claim of the volume holding the runs root (`runs/`) and the
    /// workflow's folder (`workspace/`).
    #[arg(long, value_name = "NAME", default_value = "conductor-shared")]
    pub volume_claim: String,
    /// The Secret whose `keys.env` holds the agents' API keys.
    #[arg(long, value_name = "NAME", default_value = "conductor-keys")]
    pub keys_secret: String,
    /// How long agents get between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_grace, env = "CONDUCTOR_GRACE")]
    pub grace: std::time::Duration,
    #[arg(
        long,
        value_name = "DIR",
        help = "The runs root, where earlier applies are found [default: as for apply]"
    )]
    pub root: Option<PathBuf>,
}

/// What `apply` and `watch` share: the workflow, its params, and how it runs.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file (.toml or .kdl).
    pub file: PathBuf,
    /// Set a param: NAME=VALUE (a TOML value, else a string). Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Run at most N agents at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: u32,
    /// Run only these nodes or instances (and what they need). Repeatable.
    #[arg(long, value_name = "NODE")]
    pub only: Vec<String>,
    #[arg(
        long,
        value_name = "DIR",
        help = "The runs root [default: $CONDUCTOR_ROOT, else the workflow's `root`, else .conductor/runs]"
    )]
    pub root: Option<PathBuf>,
    /// Cap an apply's spending in US dollars (as reported by the agents).
    #[arg(long, value_name = "USD", value_parser = parse_budget)]
    pub budget_usd: Option<f64>,
    /// How long agents get between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_grace, env = "CONDUCTOR_GRACE")]
    pub grace: std::time::Duration,
    /// Start a new apply even when the last one did not finish (interrupted
    /// instances then start again at iteration 1).
    #[arg(long)]
    pub fresh: bool,
    /// How every process an agent starts is contained (docs/security.md).
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        env = "CONDUCTOR_CONTAINMENT"
    )]
    pub containment: crate::process::Containment,
    /// Serve the web page while it runs, on ADDR [default: 127.0.0.1:14355,
    /// else a free port], and print its address.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub ui: Option<String>,
    /// Where each instance's loop runs: here, or as a Slurm job each
    /// (docs/distributed.md) [default: the workflow's `[executor] kind`,
    /// else local].
    #[arg(long, value_enum, env = "CONDUCTOR_EXECUTOR")]
    pub executor: Option<ExecutorKind>,
    /// An argument for every `sbatch` (`--executor slurm`), such as
    /// `--partition=gpu`. Repeatable.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

/// `--executor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

/// `plan --executor`: the executors, and Kubernetes, whose Jobs `plan`
/// can write but no apply submits yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanExecutor {
    Local,
    Slurm,
    Kubernetes,
}

impl RunArgs {
    /// The options of the applies these arguments ask for, of `program`
    /// (whose `[executor] kind` counts when `--executor` is not given).
    pub(crate) fn options(&self, program: &crate::compile::Program) -> crate::runner::ApplyOptions {
        let kind = self.executor.unwrap_or(match program.executor_kind() {
            crate::model::ExecutorKind::Local => ExecutorKind::Local,
            crate::model::ExecutorKind::Slurm => ExecutorKind::Slurm,
        });
        crate::runner::ApplyOptions {
            root: self.root.clone(),
            file: std::path::absolute(&self.file).ok(),
            max_parallel: self.max_parallel as usize,
            only: self.only.clone(),
            fail_fast: false,
            grace: self.grace,
            budget_usd: self.budget_usd,
            force: None,
            fresh: self.fresh,
            containment: self.containment,
            executor: match kind {
                ExecutorKind::Local => crate::runner::Executor::Local,
                ExecutorKind::Slurm => crate::runner::Executor::Slurm {
                    sbatch_args: self.sbatch_args.clone(),
                },
            },
            sets: self.sets.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Stop everything at the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write a JUnit XML report (one testcase per instance) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Re-run instances that are up to date: all of them, or `--force=NODE,..`
    /// (node ids or instance keys) and everything downstream of those.
    #[arg(
        long,
        value_name = "NODE",
        num_args = 0..=1,
        require_equals = true,
        value_delimiter = ',',
        action = clap::ArgAction::Append
    )]
    pub force: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

/// A budget that is not a finite amount greater than 0.
#[derive(Debug, thiserror::Error)]
#[error("a budget is a number of US dollars greater than 0, such as 2.50; `{0}` is not")]
struct BadBudget(String);

fn parse_budget(text: &str) -> Result<f64, BadBudget> {
    match text.trim().parse::<f64>() {
        Ok(usd) if usd.is_finite() && usd > 0.0 => Ok(usd),
        _ => Err(BadBudget(text.to_string())),
    }
}

fn parse_grace(text: &str) -> Result<std::time::Duration, crate::model::DurationError> {
    crate::model::Duration::parse_flag(text)
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on; anything but loopback needs --token-env.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:14355")]
    pub bind: std::net::SocketAddr,
    #[arg(
        long,
        value_name = "DIR",
        help = "The runs root [default: $CONDUCTOR_ROOT, else .conductor/runs]"
    )]
    pub root: Option<PathBuf>,
    /// The workflow files the page may start.
    #[arg(long, value_name = "DIR")]
    pub workflows: Option<PathBuf>,
    /// Show everything, act on nothing: no stop, start, re-run or post.
    #[arg(long)]
    pub read_only: bool,
    /// The environment variable that holds the token clients must send
    /// (required with a --bind beyond loopback).
    #[arg(long, value_name = "NAME")]
    pub token_env: Option<String>,
}

/// Where to look for applies.
#[derive(Debug, Clone, Args)]
pub struct StoreLocation {
    /// The workflow whose latest apply to show [default: the latest apply under the root].
    #[arg(long, value_name = "FILE")]
    pub workflow: Option<PathBuf>,
    #[arg(
        long,
        value_name = "DIR",
        help = "The runs root [default: $CONDUCTOR_ROOT, else .conductor/runs]"
    )]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub location: StoreLocation,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The node or instance key (such as `review` or `review[docs/a.md]`);
    /// without one, the instances and their states.
    pub instance: Option<String>,
    #[command(flatten)]
    pub location: StoreLocation,
    /// Keep printing as the agent writes, across iterations, until the instance ends.
    #[arg(long, short)]
    pub follow: bool,
    /// Print stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Print a CLI agent's event stream as recorded, not as a transcript.
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// A folder in the repository (default: the current one).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove conductor's branches too (conductor/*, conductor-kept/*),
    /// on the same terms: merged into a branch of yours, or no commit of
    /// their own.
    #[arg(long)]
    pub branches: bool,
    /// Print each decision as a JSON line.
    #[arg(long)]
    pub json: bool,
}
