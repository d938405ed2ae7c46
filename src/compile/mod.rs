//! Owns the third stage of the front end: from the entry file's model to one
//! [`Program`]. It loads sub-workflows (refusing recursion), resolves params
//! and `--set`, merges defaults, resolves `needs` and agents, checks templates
//! statically, and orders the nodes. Every problem becomes a diagnostic; the
//! stage goes on after one so that a user sees them all.

mod builder;
mod entry;
mod graph;
mod locate;
mod merge;
mod node;
mod params;
mod program;
mod schema_file;
mod source_file;
mod templates;

pub use entry::{Compilation, compile, compile_text};
pub(crate) use locate::Locator;
#[cfg(test)]
pub(crate) use merge::OWN_BRANCHES;
pub use program::{
    Action, DEFAULT_MAX_ITEMS, DEFAULT_MAX_ITERATIONS, DEFAULT_TIMEOUT_MS, Group, GroupId,
    MergeSpec, Node, NodeId, NotifySpec, Program, Scope,
};
pub(crate) use source_file::params_of;
