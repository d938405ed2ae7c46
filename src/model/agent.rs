//! The `[agents.NAME]` table: how to start one agent.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::{Spanned, UserMap};

/// Which backend runs an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// Any program: the prompt on stdin, the answer on stdout (or in `output.md`).
    Command,
    /// The `claude` CLI (stream-json).
    Claude,
    /// The `codex` CLI (`codex exec --json`).
    Codex,
    /// The `gemini` CLI (stream-json).
    Gemini,
    /// An OpenAI-compatible Chat Completions endpoint, streamed.
    Openai,
    /// The Anthropic Messages API, streamed.
    Anthropic,
}

impl AgentKind {
    pub const ALL: [(&'static str, Self); 6] = [
        ("command", Self::Command),
        ("claude", Self::Claude),
        ("codex", Self::Codex),
        ("gemini", Self::Gemini),
        ("openai", Self::Openai),
        ("anthropic", Self::Anthropic),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("command", |(n, _)| n)
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == text).map(|(_, k)| *k)
    }

    /// Agents that run as a local process (and so can create `DONE`).
    pub fn is_process(self) -> bool {
        matches!(
            self,
            Self::Command | Self::Claude | Self::Codex | Self::Gemini
        )
    }
}

/// Prices for backends that report tokens but no cost.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Price {
    /// US dollars per million input tokens.
    pub input_per_mtok: Option<Spanned<f64>>,
    /// US dollars per million output tokens.
    pub output_per_mtok: Option<Spanned<f64>>,
}

/// One agent a node can run.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Agent {
    /// The backend.
    pub kind: Spanned<AgentKind>,
    /// Model name passed to the CLI or the HTTP API.
    pub model: Option<Spanned<String>>,
    /// For `kind = "command"`: the program and its arguments. For the CLI
    /// kinds: the program to run instead of the preset's (such as `["npx", "claude"]`).
    pub command: Option<Vec<Spanned<String>>>,
    /// Replaces the preset's arguments (a `model` is still passed).
    pub args: Option<Vec<Spanned<String>>>,
    /// Appended to the preset's arguments.
    pub extra_args: Option<Vec<Spanned<String>>>,
    /// Environment variables for the agent.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub env: UserMap<Spanned<String>>,
    /// Base URL of an HTTP backend.
    pub base_url: Option<Spanned<String>>,
    /// Name of the environment variable that holds the API key.
    pub api_key_env: Option<Spanned<String>>,
    /// Token prices, for budgets.
    pub price: Option<Price>,
}

impl Agent {
    /// The preset used when `claude`, `codex` or `gemini` is named without
    /// being declared under `[agents]`.
    pub fn builtin(name: &str, span: crate::source::Span) -> Option<Self> {
        let kind = match name {
            "claude" => AgentKind::Claude,
            "codex" => AgentKind::Codex,
            "gemini" => AgentKind::Gemini,
            _ => return None,
        };
        Some(Self {
            kind: Spanned::new(kind, span),
            model: None,
            command: None,
            args: None,
            extra_args: None,
            env: Vec::new(),
            base_url: None,
            api_key_env: None,
            price: None,
        })
    }
}
