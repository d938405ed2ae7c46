//! Owns how a server is asked to run: where it listens, the run root, the
//! workflow files it may start, whether it acts at all, and its token; and
//! the refusal to listen beyond this machine without one.

use std::net::SocketAddr;
use std::path::PathBuf;

/// How `conductor serve` runs.
#[derive(Debug, Clone)]
pub(crate) struct ServeOptions {
    pub bind: SocketAddr,
    /// The runs root.
    pub root: PathBuf,
    /// `--workflows DIR`: the workflow files the page may start.
    pub workflows: Option<PathBuf>,
    /// `--read-only`: no action at all.
    pub read_only: bool,
    /// The token clients must send; required off loopback.
    pub token: Option<String>,
    /// The variable that held it: the applies the server starts do not
    /// inherit it.
    pub token_env: Option<String>,
}

/// Why a server cannot start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    #[error(
        "--bind {0} listens beyond this machine, so a token is required\n  help: put a long random token in an environment variable and pass --token-env NAME"
    )]
    TokenRequired(SocketAddr),
    #[error(
        "cannot listen on {addr}: {source}\n  help: another server may hold the port; pass --bind 127.0.0.1:PORT"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--workflows {0}: not a folder")]
    Workflows(String),
    #[error("cannot start the server's runtime: {0}")]
    Runtime(std::io::Error),
}

impl ServeOptions {
    /// Refuses what would expose the run store.
    pub(crate) fn check(&self) -> Result<(), ServeError> {
        if !self.bind.ip().is_loopback() && self.token.is_none() {
            return Err(ServeError::TokenRequired(self.bind));
        }
        if let Some(dir) = &self.workflows
            && !dir.is_dir()
        {
            return Err(ServeError::Workflows(dir.display().to_string()));
        }
        Ok(())
    }
}
