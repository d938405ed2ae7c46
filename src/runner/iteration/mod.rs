//! One iteration of a Ralph loop: one run folder, one agent process or
//! HTTP call ([`run`](mod@run)), cut short by the iteration's limits ([`limits`]),
//! and the records it leaves ([`record`]).

mod limits;
mod ran;
mod record;
mod request;
mod run;

pub(super) use limits::Cut;
pub(super) use ran::Ran;
pub(super) use record::{GroupCommit, error_summary, finish_record, post, tail_lines};
pub(super) use request::Request;
pub(super) use run::run;
