//! Owns the second stage of the front end: reading the spanned tree into the
//! typed model. Every problem is recorded and reading goes on, so one run
//! reports every unknown key, wrong type and bad value in a file.

mod agent;
mod executor;
mod node;
mod read;
mod stop;
mod workflow;

pub(crate) use workflow::decode_workflow;
