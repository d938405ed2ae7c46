//! The dispatcher: one owner of all run state of an apply, units talk to it
//! by messages ([`schedule`] holds it and its scheduling rules; the other
//! files each hold one part of its state and the logic over it).

mod fan_out;
mod graph;
mod groups;
mod overlap;
mod records;
mod replan;
mod requests;
mod schedule;
mod slots;
mod units;

#[cfg(test)]
mod tests;

pub(crate) use requests::install as install_stop_requests;
pub(crate) use schedule::{Control, Dispatcher, Limits, Setup};
