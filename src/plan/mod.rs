//! Owns the last stage of the front end: expanding a compiled [`Program`](crate::compile::Program)
//! into node instances (static fan-out and matrices expanded, run-time fan-out
//! as placeholders), resolving each instance's agent, limits and needs,
//! rendering its first prompt strictly, and the worst case before anything
//! runs. The instances form a petgraph DAG; [`json`], [`dot`] and [`text`]
//! print it.

mod build;
pub mod dot;
pub(crate) mod expand;
pub mod json;
mod limits;
mod model;
pub mod text;
mod writes;

pub(crate) use build::instance_of_item;
pub use build::{PlanOptions, plan};
pub use model::{
    AgentRef, Instance, InstanceKind, IsolationPlan, MergeResolver, Plan, StopPlan, SuccessCommand,
    WorstCase,
};
