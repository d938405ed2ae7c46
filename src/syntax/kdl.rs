//! Lowers KDL 2.0 documents into the spanned tree (being written).

use super::tree::Table;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{FileId, Span};

pub fn parse(file: FileId, text: &str) -> Result<Table, Vec<Diagnostic>> {
    let _ = text;
    Err(vec![Diagnostic::error(Code::KdlSyntax, "KDL is not read yet").label(Span::new(file, 0..0), "")])
}
