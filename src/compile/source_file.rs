//! Reads one workflow file from disk through both front-end stages: text to
//! spanned tree (syntax) to typed model (decode).

use std::path::Path;

use crate::decode::decode_workflow;
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::Workflow;
use crate::source::{FileId, Sources, Span, Syntax, display_name};
use crate::syntax;

/// Why a file could not be read.
#[derive(Debug)]
pub(super) enum LoadError {
    /// The extension is neither `.toml` nor `.kdl`.
    UnknownSyntax,
    Io(std::io::Error),
}

/// Reads `path` (absolute) and registers it in `sources`.
pub(super) fn read(path: &Path, sources: &mut Sources) -> Result<FileId, LoadError> {
    let syntax = Syntax::from_path(path).ok_or(LoadError::UnknownSyntax)?;
    if let Some(id) = sources.find(path) {
        return Ok(id);
    }
    let text = std::fs::read_to_string(path).map_err(LoadError::Io)?;
    Ok(sources.add(path.to_path_buf(), display_name(path), text, syntax))
}

/// Parses and decodes a registered file.
pub(super) fn decode(file: FileId, sources: &Sources, diags: &mut Diagnostics) -> Option<Workflow> {
    let src = sources.get(file);
    match syntax::parse(file, src.syntax, &src.text) {
        Ok(tree) => decode_workflow(&tree, src.syntax, diags),
        Err(errors) => {
            for e in errors {
                diags.push(e);
            }
            None
        }
    }
}

/// The diagnostic for a file that could not be read; `at` is where it was named.
pub(super) fn load_error(path: &Path, err: &LoadError, at: Option<Span>, code: Code) -> Diagnostic {
    let shown = display_name(path);
    let d = match err {
        LoadError::UnknownSyntax if path.is_dir() => Diagnostic::error(
            Code::Io,
            format!("{shown} is a folder, not a workflow file"),
        )
        .help("name the workflow file itself, such as workflows/session.toml"),
        LoadError::UnknownSyntax => Diagnostic::error(
            Code::Io,
            format!("{shown}: a workflow file must end in .toml or .kdl"),
        )
        .help("rename the file, or point at the .toml or .kdl file"),
        LoadError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Diagnostic::error(code, format!("workflow file {shown} does not exist")).help(
                if at.is_some() {
                    "check the path; paths in a workflow are relative to the file that names them"
                } else {
                    "check the path; it is relative to the current directory"
                },
            )
        }
        LoadError::Io(e) => Diagnostic::error(Code::Io, format!("cannot read {shown}: {e}")),
    };
    match at {
        Some(span) => d.label(span, "named here"),
        None => d,
    }
}
