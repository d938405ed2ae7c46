//! Owns the first stage of the front end: turning TOML or KDL text into one
//! spanned value tree ([`Table`]). Everything format-specific ends here.

mod kdl;
mod parse;
mod toml;
mod tree;

pub(crate) use parse::parse;
pub(crate) use tree::{Key, Table, Value, ValueKind};
