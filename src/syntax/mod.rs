//! Owns the first stage of the front end: turning TOML or KDL text into one
//! spanned value tree ([`Table`]). Everything format-specific ends here.

mod kdl;
mod toml;
mod tree;

pub use tree::{Key, Table, Value, ValueKind};

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Syntax};

/// Parses a workflow file's text in the given syntax.
pub fn parse(file: FileId, syntax: Syntax, text: &str) -> Result<Table, Vec<Diagnostic>> {
    match syntax {
        Syntax::Toml | Syntax::Text => toml::parse(file, text),
        Syntax::Kdl => kdl::parse(file, text),
    }
}
