//! Owns one agent as a run needs it, resolved from the workflow's
//! `[agents]` table: its kind, its argv (process kinds) or endpoint (HTTP
//! kinds), its own `env`, the API keys it may see, and its `price`. Plain
//! data: what runs it is `crate::runner`'s, how it is reached is
//! [`super::http`]'s.

use super::http::HttpSpec;
use super::usage::Price;
use crate::model::AgentKind;

/// One agent an instance may run, resolved.
#[derive(Debug, Clone)]
pub(crate) struct AgentSpec {
    pub name: String,
    pub kind: AgentKind,
    /// Program and arguments; the program as written (resolved against PATH at spawn).
    pub argv: Vec<String>,
    /// The agent's own `env`.
    pub env: Vec<(String, String)>,
    /// Secret variables this agent may see (its kind's vendor key, its `api_key_env`).
    pub own_keys: Vec<String>,
    /// An HTTP kind's endpoint, model and key variable; `None` for process kinds.
    pub http: Option<HttpSpec>,
    /// `price`: what its tokens cost when it reports no cost itself.
    pub price: Option<Price>,
}
