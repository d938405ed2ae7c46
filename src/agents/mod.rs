//! Everything that differs by agent kind, below the runner: the per-kind
//! table (argv presets, environment, API keys, install hints: [`kind`]),
//! an agent resolved for a run ([`spec`]), reading a CLI's event stream
//! ([`stream`]) and its latest tool call ([`activity`]), the final answer
//! and its JSON ([`answer`]), usage and prices ([`usage`]), `--version`
//! probes ([`version`]), and the HTTP clients ([`http`]). Nothing here
//! runs a loop or knows of an apply.

pub(crate) mod activity;
pub(crate) mod answer;
pub(crate) mod http;
pub(crate) mod kind;
pub(crate) mod spec;
pub(crate) mod stream;
pub(crate) mod transcript;
pub(crate) mod usage;
pub(crate) mod version;
