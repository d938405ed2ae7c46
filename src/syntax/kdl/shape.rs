//! The shapes of conductor's KDL form: for every context (the document, a
//! node, an agent, ...) which keys are lists, which are tables and of what
//! context, and which are collected by id. It mirrors the TOML schema; a key
//! that is not listed is lowered by what its node holds, so that a misspelt
//! key still reaches the decoder and gets its "did you mean".

use crate::diagnostic::Code;

/// Where a key is written; decides its shape and whether its name is a
/// schema key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ctx {
    Root,
    /// The children of `params`: one param each, named by the user.
    Params,
    Param,
    /// A param declared `type="list"`, whose `default` is always a list.
    ListParam,
    /// A node, and `defaults`.
    Node,
    Agent,
    /// `prompt template=... { vars ... }`.
    Prompt,
    Prompts,
    Success,
    /// A node's `merge`.
    Merge,
    /// `executor`, of the workflow or a node.
    Executor,
    /// User keys whose values are always lists.
    Matrix,
    /// Schema keys nothing here knows; lowered by what they hold.
    Generic,
    /// User keys: `vars`, `env`, `with`, fan-out items.
    User,
}

/// What the key of a child node or property turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A scalar key, or one nobody declared: lowered by what the node holds.
    Plain,
    /// Always a list; repeated children concatenate.
    List,
    /// A table of this context.
    Table(Ctx),
    /// One param; its context depends on its declared type.
    Param,
    /// `for-each`: a list of items, or a table naming their source.
    ForEach,
    /// `command` in `success`: one command, appended to `commands`.
    Command,
    /// `agent "NAME"` or `node "ID"`: collected under a table, keyed by the first argument.
    Keyed(Keyed),
}

/// A node kind that KDL writes once per member, with its id as the argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Keyed {
    /// The TOML table the members go in.
    pub(super) group: &'static str,
    pub(super) ctx: Ctx,
    /// What the first argument is called, for messages.
    pub(super) id: &'static str,
    /// Reported when two members share an id.
    pub(super) code: Code,
}

impl Ctx {
    /// Schema keys are written with `-` and read with `_`; a user's keys are
    /// taken as written.
    pub(super) fn converts(self) -> bool {
        !matches!(self, Self::Params | Self::Matrix | Self::User)
    }

    /// The context of a table that a key of this context holds without
    /// declaring it: user data stays user data.
    pub(super) fn undeclared(self) -> Self {
        if self.converts() {
            Self::Generic
        } else {
            Self::User
        }
    }

    /// The shape of canonical key `key` here.
    pub(super) fn shape(self, key: &str) -> Shape {
        match (self, key) {
            (Self::Root, "params") => Shape::Table(Self::Params),
            (Self::Root, "defaults") => Shape::Table(Self::Node),
            (Self::Root, "agent") => Shape::Keyed(Keyed {
                group: "agents",
                ctx: Self::Agent,
                id: "name",
                code: Code::DuplicateKey,
            }),
            (Self::Root, "node") => Shape::Keyed(Keyed {
                group: "nodes",
                ctx: Self::Node,
                id: "id",
                code: Code::DuplicateNode,
            }),
            (Self::Root, "prompts") => Shape::Table(Self::Prompts),
            (Self::Root, "success") => Shape::Table(Self::Success),
            (Self::Root, "limits") | (Self::Node, "stop" | "output") | (Self::Agent, "price") => {
                Shape::Table(Self::Generic)
            }
            (Self::Params, _) => Shape::Param,
            (Self::Param, "enum")
            | (Self::ListParam, "enum" | "default")
            | (Self::Node, "needs" | "inputs" | "fallback_agents")
            | (Self::Agent, "command" | "args" | "extra_args")
            | (Self::Prompts, "library")
            | (Self::Success, "commands")
            | (Self::Merge, "from" | "verify")
            | (Self::Executor, "sbatch_args")
            | (Self::Matrix, _) => Shape::List,
            (Self::Node, "prompt") => Shape::Table(Self::Prompt),
            (Self::Node, "merge") => Shape::Table(Self::Merge),
            (Self::Root | Self::Node, "executor") => Shape::Table(Self::Executor),
            (Self::Node, "with" | "env") | (Self::Agent, "env") | (Self::Prompt, "vars") => {
                Shape::Table(Self::User)
            }
            (Self::Node, "for_each") => Shape::ForEach,
            (Self::Node, "matrix") => Shape::Table(Self::Matrix),
            (Self::Success, "command") => Shape::Command,
            _ => Shape::Plain,
        }
    }
}
