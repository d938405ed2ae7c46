//! One iteration of a Ralph loop: one run folder, one agent process or
//! HTTP call ([`run`]), cut short by the iteration's limits ([`limits`]),
//! and the records it leaves ([`record`]).

mod limits;
mod ran;
mod record;
mod request;
mod run;

pub use limits::Cut;
pub use ran::Ran;
pub use record::{error_summary, finish_record, post, tail_lines};
pub use request::Request;
pub use run::run;
