//! Owns why an iteration did not finish its node (docs/console.md, "Why a
//! loop goes on"): each success condition that was not met, with what was
//! seen instead, and the agent's own failure. The console prints it after
//! the iteration, the run's record keeps it (`why` in run-info.yaml and on
//! `RUN_STOP`), and a node that runs out of iterations fails with the last
//! one as its cause.

use std::fmt;

/// The most characters of seen text one reason quotes.
const QUOTE: usize = 160;

/// A success condition that was not met, and what was seen instead.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Unmet {
    /// `done_file`: the agent did not create `DONE`.
    NoDoneFile,
    /// `promise`: the answer does not hold it.
    NoPromise { promise: String },
    /// `output_matches`: the answer does not match.
    NoMatch { pattern: String },
    /// `exit_zero`: the agent exited non-zero, or reported failure.
    NonZero { exit_code: i32 },
    /// `expr`: it came out false.
    ExprFalse { expr: String },
    /// `command`: it exited non-zero; the last lines it printed.
    CommandFailed {
        command: String,
        exit_code: i32,
        tail: String,
    },
}

/// Why an iteration did not finish its node.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Why {
    /// The agent failed: what it said of it (its error, or the last line
    /// of its stderr).
    pub agent: Option<String>,
    /// The answer holds no usable JSON: why.
    pub json: Option<String>,
    pub unmet: Vec<Unmet>,
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDoneFile => write!(f, "no DONE"),
            Self::NoPromise { promise } => {
                write!(f, "promise `{}` not in the answer", quote(promise))
            }
            Self::NoMatch { pattern } => {
                write!(f, "the answer does not match `{}`", quote(pattern))
            }
            Self::NonZero { exit_code } => write!(f, "the agent exited {exit_code}"),
            Self::ExprFalse { expr } => write!(f, "`{}` is false", quote(expr)),
            Self::CommandFailed {
                command,
                exit_code,
                tail,
            } => {
                write!(f, "`{}` exited {exit_code}", quote(command))?;
                if !tail.is_empty() {
                    write!(f, " (last lines: {})", quote(&tail.replace('\n', " | ")))?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(agent) = &self.agent {
            parts.push(quote(agent));
        }
        if let Some(json) = &self.json {
            parts.push(format!("schema: {}", quote(json)));
        }
        // The agent's own failure says the exit code already.
        parts.extend(
            self.unmet
                .iter()
                .filter(|u| self.agent.is_none() || !matches!(u, Unmet::NonZero { .. }))
                .map(ToString::to_string),
        );
        if parts.is_empty() {
            return write!(f, "no success condition held");
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// `text` on one line, at most [`QUOTE`] characters. Whoever prints it
/// shows its control characters (`crate::report`); none is played.
fn quote(text: &str) -> String {
    let one_line = text.trim().replace(['\n', '\r'], " ");
    let cut: String = one_line.chars().take(QUOTE).collect();
    if one_line.chars().count() > QUOTE {
        format!("{cut}...")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unmet_condition_says_what_was_seen() {
        let why = Why {
            agent: None,
            json: None,
            unmet: vec![
                Unmet::NoDoneFile,
                Unmet::NoPromise {
                    promise: "<promise>DONE</promise>".into(),
                },
                Unmet::CommandFailed {
                    command: "go test ./...".into(),
                    exit_code: 1,
                    tail: "--- FAIL: TestX\nFAIL".into(),
                },
            ],
        };
        assert_eq!(
            why.to_string(),
            "no DONE; promise `<promise>DONE</promise>` not in the answer; \
             `go test ./...` exited 1 (last lines: --- FAIL: TestX | FAIL)"
        );
    }

    #[test]
    fn an_agent_failure_comes_first_and_long_text_is_cut() {
        let why = Why {
            agent: Some("agent exited with code 41: quota\u{1b}[2J".into()),
            json: Some("`verdict` is required".into()),
            unmet: vec![Unmet::NonZero { exit_code: 41 }, Unmet::NoDoneFile],
        };
        assert_eq!(
            why.to_string(),
            "agent exited with code 41: quota\u{1b}[2J; schema: `verdict` is required; no DONE"
        );
        let long = Unmet::ExprFalse {
            expr: "x".repeat(500),
        };
        assert!(long.to_string().len() < 200);
        assert!(long.to_string().contains("..."));
    }
}
