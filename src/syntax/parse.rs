//! Owns choosing the front end for a file: TOML or KDL by its syntax.

use super::tree::Table;
use super::{kdl, toml};
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Syntax};

/// Parses a workflow file's text in the given syntax.
pub(crate) fn parse(file: FileId, syntax: Syntax, text: &str) -> Result<Table, Vec<Diagnostic>> {
    match syntax {
        Syntax::Toml | Syntax::Text => toml::parse(file, text),
        Syntax::Kdl => kdl::parse(file, text),
    }
}
