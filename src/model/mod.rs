//! Owns the checked, format-independent model of one workflow file: what the
//! user wrote, typed and with its spans, before defaults are merged or
//! anything is expanded. The JSON Schema of the format is generated from these
//! types, and the decoder reads exactly the keys the schema declares.

mod agent;
mod executor;
mod node;
mod spanned;
mod stop;
mod workflow;

pub(crate) use agent::{Agent, AgentKind, Price};
pub(crate) use executor::{Executor, ExecutorKind};
pub(crate) use node::{
    ForEach, Isolation, Merge, MergeStrategy, Node, OnFailure, OutputFormat, OutputSpec, Prompt,
};
pub(crate) use spanned::{Duration, DurationError, Spanned, UserMap};
pub(crate) use stop::Stop;
pub(crate) use workflow::{
    Defaults, Limits, Notify, Param, ParamType, Prompts, Success, Workflow, json_type_name,
};
