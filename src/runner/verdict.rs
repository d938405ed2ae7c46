//! Owns what one iteration came to: the [`Verdict`] the Ralph loop acts on
//! (done, not done yet, the agent failed, the answer's JSON is unusable,
//! the run was cut short, a condition could not be evaluated), the stop
//! reason the run's record gives for it, and how it reads to a user.

use std::fmt;

use super::iteration::Cut;
use super::why::Why;
use crate::stop_reason::StopReason;

/// What one iteration came to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Verdict {
    /// A success condition held: the instance is done, for this reason
    /// (the condition, or `all`).
    Done(StopReason),
    /// No success condition held; the loop goes on. Why not.
    NotDone(Why),
    /// No success condition held, and the agent reported failure.
    AgentError(Why),
    /// A condition held, but the answer's JSON is missing or invalid: why.
    InvalidJson(String),
    /// Conductor ended the run before the agent did.
    Cut(Cut),
    /// A success condition could not be evaluated; the instance fails.
    Error(String),
}

impl Verdict {
    /// Why the iteration did not finish its node, in a line; `None` when
    /// it did, or when conductor cut it (its stop reason says that).
    pub(crate) fn why(&self) -> Option<String> {
        match self {
            Self::NotDone(why) | Self::AgentError(why) => Some(why.to_string()),
            Self::InvalidJson(e) => Some(format!("schema: {e}")),
            Self::Done(_) | Self::Cut(_) | Self::Error(_) => None,
        }
    }

    /// The run's stop reason, as its run-info.yaml, its `RUN_*` record and
    /// the next iteration's `previous.stop_reason` give it.
    pub(crate) fn stop_reason(&self) -> StopReason {
        match self {
            Self::Done(reason) => reason.clone(),
            Self::NotDone(_) => StopReason::NotDone,
            Self::AgentError(_) => StopReason::AgentError,
            Self::InvalidJson(_) => StopReason::InvalidJson,
            Self::Cut(cut) => cut.stop_reason(),
            Self::Error(_) => StopReason::StopError,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Error(why) => write!(f, "{}: {why}", self.stop_reason()),
            _ => write!(f, "{}", self.stop_reason()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stop_reason::Condition;

    #[test]
    fn a_verdict_reads_as_its_stop_reason() {
        assert_eq!(
            Verdict::Done(StopReason::Met(Condition::Promise)).to_string(),
            "promise"
        );
        assert_eq!(Verdict::NotDone(Why::default()).to_string(), "not_done");
        assert_eq!(Verdict::Cut(Cut::Rejected).to_string(), "backend_error");
        assert_eq!(
            Verdict::Error("stop expr `x`: undefined".into()).to_string(),
            "stop_error: stop expr `x`: undefined"
        );
        assert_eq!(
            Verdict::Error("x".into()).stop_reason(),
            StopReason::StopError
        );
    }
}
