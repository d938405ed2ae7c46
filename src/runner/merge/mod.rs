//! Owns a merge node's run (docs/isolation.md, "Merge nodes"): what it is
//! given ([`start`]), its branches merged one at a time onto the moving
//! target and verified ([`sequence`]), a conflict handed to the resolving
//! agent when the node names one ([`mod@resolve`]: a fan-in instance's
//! resolving agent is run by it too), and what it tells ([`report`]).

mod report;
mod resolve;
mod sequence;
mod start;

pub(crate) use report::told;
pub(crate) use resolve::{Conflict, resolve};
pub(crate) use sequence::run;
pub(crate) use start::{LoopRunner, MergeStart, Source, git};
