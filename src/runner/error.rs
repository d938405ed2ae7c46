//! Owns the reasons an apply cannot start, each with its exit code and the
//! help a user needs (docs/exit-codes.md): an invocation that names nothing
//! or a workflow the runner cannot build (2), or a machine that is not
//! ready: a missing program, key or workdir, a runs root that is not
//! writable, another apply holding the workflow (3).

use std::fmt;
use std::path::PathBuf;

use super::build::JobError;
use crate::exit_code;

/// An apply that could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    /// The workflow compiled but cannot run as written.
    #[error(transparent)]
    Job(#[from] JobError),
    /// `--only` or `--force` names no node or instance.
    #[error("--{flag} {name}: no node or instance has that name{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownName {
        flag: &'static str,
        name: String,
        suggestion: Option<String>,
    },
    /// Agents, keys or workdirs the machine lacks, all of them.
    #[error("{}", Problems(.0))]
    NotReady(Vec<Problem>),
    #[error("the runs root is not writable: cannot create {what}: {source}")]
    RootNotWritable {
        /// A folder, or "a file in" one.
        what: String,
        source: std::io::Error,
    },
    #[error("workflow `{workflow}` is already being applied in {} by {holder}", dir.display())]
    Locked {
        workflow: String,
        dir: PathBuf,
        holder: String,
    },
    #[error("the project bus cannot be written: {0}")]
    Bus(crate::bus::AppendError),
    #[error("cannot find conductor's own binary: {0}")]
    OwnBinary(std::io::Error),
    #[error(transparent)]
    Keeper(#[from] crate::process::keeper::KeeperError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// `--executor slurm` where Slurm cannot be asked, or with what it
    /// cannot run.
    #[error("--executor slurm: {0}")]
    Executor(String),
}

/// One thing the machine lacks for the workflow to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    WorkdirMissing {
        node: String,
        dir: PathBuf,
    },
    /// An HTTP agent's key variable is unset or blank.
    KeyUnset {
        agent: String,
        node: String,
        var: String,
    },
    /// `[notify] secret_env` names a variable that is unset or blank.
    WebhookSecretUnset {
        var: String,
    },
    /// An isolated node's repository or base cannot be had.
    Isolation {
        node: String,
        reason: String,
        help: String,
    },
    /// A process agent's program is not on PATH.
    ProgramMissing {
        agent: String,
        node: String,
        program: String,
        /// How to install it.
        hint: String,
    },
}

impl Problem {
    fn help(&self) -> Option<String> {
        match self {
            Self::WorkdirMissing { .. } => None,
            Self::KeyUnset { var, .. } => Some(format!(
                "export {var} with the key, or name the variable that holds it with `api_key_env`"
            )),
            Self::ProgramMissing { hint, .. } => Some(hint.clone()),
            Self::Isolation { help, .. } => Some(help.clone()),
            Self::WebhookSecretUnset { var } => Some(format!(
                "export {var} with the secret the webhook's receiver checks signatures with"
            )),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WorkdirMissing { node, dir } => {
                write!(f, "node `{node}`: workdir {} does not exist", dir.display())
            }
            Self::KeyUnset { agent, node, var } => write!(
                f,
                "agent `{agent}` (node `{node}`): the API key variable {var} is not set"
            ),
            Self::WebhookSecretUnset { var } => {
                write!(f, "[notify]: the webhook secret variable {var} is not set")
            }
            Self::Isolation { node, reason, .. } => write!(f, "node `{node}`: {reason}"),
            Self::ProgramMissing {
                agent,
                node,
                program,
                ..
            } => write!(
                f,
                "agent `{agent}` (node `{node}`): `{program}` is not found on PATH"
            ),
        }
    }
}

/// Every problem on its line, each with its help under it.
struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
            if let Some(help) = p.help() {
                write!(f, "\n  help: {help}")?;
            }
        }
        Ok(())
    }
}

impl ApplyError {
    /// The process exit code it ends conductor with.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Job(_) | Self::UnknownName { .. } => exit_code::INVALID,
            Self::NotReady(_)
            | Self::RootNotWritable { .. }
            | Self::Locked { .. }
            | Self::Bus(_)
            | Self::OwnBinary(_)
            | Self::Keeper(_)
            | Self::Runtime(_)
            | Self::Signals(_)
            | Self::Executor(_) => exit_code::ENVIRONMENT,
        }
    }

    /// What to do about it, when there is one thing to do (the problems of
    /// [`Self::NotReady`] carry their own).
    pub(crate) fn help(&self) -> Option<&'static str> {
        match self {
            Self::RootNotWritable { .. } => {
                Some("pass a writable folder with --root, or set CONDUCTOR_ROOT")
            }
            Self::Bus(_) => Some(
                "the project bus must be a regular file conductor can append to: move away what is at that path, or pass another --root",
            ),
            Self::Locked { .. } => {
                Some("wait for it to finish, or stop it (Ctrl-C, or `kill` that pid)")
            }
            Self::UnknownName { .. } => Some("`conductor plan FILE` lists every node and instance"),
            Self::Keeper(crate::process::keeper::KeeperError::Unavailable(_)) => Some(
                "run without --containment cgroup (CONDUCTOR_CONTAINMENT) to contain agents as their subreaper (docs/security.md)",
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_said_with_its_help_and_the_code_is_environment() {
        let e = ApplyError::NotReady(vec![
            Problem::ProgramMissing {
                agent: "a".into(),
                node: "n".into(),
                program: "claude".into(),
                hint: "install it with `npm install -g @anthropic-ai/claude-code`".into(),
            },
            Problem::WorkdirMissing {
                node: "m".into(),
                dir: "/nowhere".into(),
            },
        ]);
        assert_eq!(
            e.to_string(),
            "agent `a` (node `n`): `claude` is not found on PATH\n  help: install it with `npm install -g @anthropic-ai/claude-code`\nnode `m`: workdir /nowhere does not exist"
        );
        assert_eq!(e.exit_code(), exit_code::ENVIRONMENT);
        let unknown = ApplyError::UnknownName {
            flag: "only",
            name: "revew".into(),
            suggestion: Some("review".into()),
        };
        assert_eq!(
            unknown.to_string(),
            "--only revew: no node or instance has that name; did you mean `review`?"
        );
        assert_eq!(unknown.exit_code(), exit_code::INVALID);
    }
}
