//! `conductor watch`'s re-planning (docs/watch.md): which files count and
//! how their events are gathered ([`files`]), and the thread that turns
//! each burst that counts into a new plan for the running apply or the next
//! one ([`replan`]). It prints nothing: what the user should know goes to
//! the command line as notices.

pub(crate) mod files;
mod replan;

pub(crate) use replan::{Notice, Replanner, watch_set};
