//! Owns the checked, format-independent model of one workflow file: what the
//! user wrote, typed and with its spans, before defaults are merged or
//! anything is expanded. The JSON Schema of the format is generated from these
//! types, and the decoder reads exactly the keys the schema declares.

mod agent;
mod node;
mod spanned;
mod stop;
mod workflow;

pub use agent::{Agent, AgentKind, Price};
pub use node::{ForEach, Node, OnFailure, OutputFormat, OutputSpec, Prompt};
pub use spanned::{Duration, DurationError, Spanned, UserMap};
pub use stop::Stop;
pub use workflow::{
    Defaults, Limits, Param, ParamType, Prompts, Success, Workflow, json_type_name,
};
