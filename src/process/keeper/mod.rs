//! The keeper: the small process that starts, contains and ends every
//! process conductor runs (docs/security.md, "Containment"). Conductor
//! talks to it through [`client`]; [`server`] is the keeper itself
//! (`conductor __keeper`), which carries runs' output to their files
//! redacted (`relay`); [`protocol`] is what they say.

pub(crate) mod client;
pub(crate) mod protocol;
mod relay;
pub(crate) mod server;

pub(crate) use client::{Contained, Keeper, KeeperError, Launch, Spawn};
pub(crate) use protocol::Containment;
