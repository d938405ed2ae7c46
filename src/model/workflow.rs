//! The top level of a workflow file: name, params, defaults, agents, prompt
//! library, nodes, success commands and limits.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use super::{Agent, Node, OnFailure, Spanned, Stop, UserMap};

/// The type of a param.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ParamType {
    String,
    Int,
    Bool,
    /// A path: relative to this file when written here, to the current
    /// directory when given with `--set`.
    Path,
    List,
}

impl ParamType {
    pub(crate) const ALL: [(&'static str, Self); 5] = [
        ("string", Self::String),
        ("int", Self::Int),
        ("bool", Self::Bool),
        ("path", Self::Path),
        ("list", Self::List),
    ];

    pub(crate) fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("string", |(n, _)| n)
    }
}

/// A typed input of the workflow, set with `--set NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Param {
    #[schemars(skip)]
    pub name: Spanned<String>,
    /// The param's type.
    #[serde(rename = "type")]
    pub ty: Spanned<ParamType>,
    /// The value when `--set` does not give one; without it the param is required.
    pub default: Option<Spanned<serde_json::Value>>,
    /// The only values allowed.
    #[serde(rename = "enum")]
    pub choices: Option<Vec<Spanned<serde_json::Value>>>,
    /// What the param is for.
    pub description: Option<Spanned<String>>,
}

/// Settings every node inherits unless it sets them itself.
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Defaults {
    pub agent: Option<Spanned<String>>,
    pub workdir: Option<Spanned<String>>,
    pub isolation: Option<Spanned<super::Isolation>>,
    pub base: Option<Spanned<String>>,
    pub network: Option<Spanned<bool>>,
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub env: UserMap<Spanned<String>>,
    pub inputs: Option<Vec<Spanned<String>>>,
    pub on_failure: Option<Spanned<OnFailure>>,
    pub fallback_agents: Option<Vec<Spanned<String>>>,
    pub max_parallel: Option<Spanned<u32>>,
    pub max_items: Option<Spanned<u32>>,
    pub stop: Option<Stop>,
}

/// The prompt library.
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Prompts {
    /// Folders searched for templates, relative to this file, after this file's own folder.
    #[serde(default)]
    pub library: Vec<Spanned<String>>,
}

/// Checks run after every node is done.
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Success {
    /// Shell commands that must all exit 0, run in `[defaults] workdir` (else this file's folder); `{{ params }}` may be used.
    #[serde(default)]
    pub commands: Vec<Spanned<String>>,
}

/// Caps on a whole apply.
#[derive(Debug, Clone, Default, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Limits {
    /// Stop the apply when reported cost passes this, in US dollars.
    pub budget_usd: Option<Spanned<f64>>,
    /// At most this many agent runs in the whole apply.
    pub max_agents: Option<Spanned<u32>>,
}

/// Who is told when instances and applies end.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Notify {
    /// An http(s) URL each instance's and the apply's end is posted to, as JSON.
    pub webhook: Spanned<String>,
    /// The environment variable holding the secret each POST is signed with (HMAC-SHA256, `X-Conductor-Signature`).
    pub secret_env: Option<Spanned<String>>,
}

/// A workflow file.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(deny_unknown_fields, title = "Conductor workflow")]
pub(crate) struct Workflow {
    /// Format version; must be 1.
    pub version: Spanned<i64>,
    /// The workflow's name.
    pub name: Spanned<String>,
    /// What the workflow does.
    pub description: Option<Spanned<String>>,
    /// Bus project id (default: a slug of `name`).
    pub project: Option<Spanned<String>>,
    /// Runs root, relative to this file (default: `.conductor/runs` in the current directory).
    pub root: Option<Spanned<String>>,
    /// For a sub-workflow: the node whose result is the workflow's result.
    pub output: Option<Spanned<String>>,
    /// Typed inputs.
    #[schemars(with = "Option<BTreeMap<String, Param>>")]
    pub params: Vec<Param>,
    /// Settings every node inherits.
    pub defaults: Option<Defaults>,
    /// Agents nodes can run.
    #[schemars(with = "Option<BTreeMap<String, Agent>>")]
    pub agents: UserMap<Agent>,
    /// The prompt library.
    pub prompts: Option<Prompts>,
    /// The nodes of the DAG.
    #[schemars(with = "BTreeMap<String, Node>")]
    pub nodes: Vec<Node>,
    /// Checks after every node is done.
    pub success: Option<Success>,
    /// Caps on a whole apply.
    pub limits: Option<Limits>,
    /// Webhooks on instance and apply end.
    pub notify: Option<Notify>,
    /// Where instances run, and what each Slurm job asks for.
    pub executor: Option<super::Executor>,
}

impl ParamType {
    /// Whether `value` has this type (paths are strings).
    pub(crate) fn accepts(self, value: &serde_json::Value) -> bool {
        match self {
            Self::String | Self::Path => value.is_string(),
            Self::Int => value.is_i64(),
            Self::Bool => value.is_boolean(),
            Self::List => value.is_array(),
        }
    }

    /// The type's name with its article: "an int", "a string".
    pub(crate) fn with_article(self) -> String {
        let name = self.as_str();
        let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {name}")
    }

    /// How a value of this type is written, for help lines.
    pub(crate) fn example(self) -> &'static str {
        match self {
            Self::String => "\"text\"",
            Self::Path => "\"../repo\"",
            Self::Int => "3",
            Self::Bool => "true",
            Self::List => "[\"a\", \"b\"]",
        }
    }
}

/// Describes a JSON value the way a type error does.
pub(crate) fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        serde_json::Value::Number(_) => "a float",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a table",
    }
}
