//! Owns the run store's names and writes: task and run ids in formats the Go
//! seed accepts (and that sort in creation order, unlike its run ids), and
//! whole-file writes that are atomic. The layout is [`layout`]'s
//! (docs/run-store.md).

mod atomic;
pub(crate) mod counter;
mod ids;
mod job;
mod run_info;

pub mod index;
pub mod layout;
pub mod live;
pub use atomic::{write_atomic, write_atomic_fast};
pub(crate) use ids::short_hash;
pub use ids::{is_project_id, is_task_id, run_id, task_id};
pub use job::ExecutorJob;
pub use run_info::{NOT_ENDED, RunInfo, RunInfoError};
