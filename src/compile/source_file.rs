//! Reads one workflow file from disk through both front-end stages: text to
//! spanned tree (syntax) to typed model (decode).

use std::path::Path;

use crate::decode::decode_workflow;
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::Workflow;
use crate::source::{FileId, ReadError, Sources, Span, Syntax, display_name};
use crate::syntax;

/// Why a file could not be read.
#[derive(Debug)]
pub(super) enum LoadError {
    /// The extension is neither `.toml` nor `.kdl`.
    UnknownSyntax,
    Io(std::io::Error),
    /// Not UTF-8: its text (lossy) is registered as `file`, for a
    /// diagnostic that points at the first bad byte.
    NotUtf8 {
        file: FileId,
        offset: usize,
        byte: u8,
    },
}

/// Reads `path` (absolute) and registers it in `sources`.
pub(super) fn read(path: &Path, sources: &mut Sources) -> Result<FileId, LoadError> {
    let syntax = Syntax::from_path(path).ok_or(LoadError::UnknownSyntax)?;
    // A file that is not UTF-8 is kept as text only, for its diagnostic:
    // read it again to say so again.
    if let Some(id) = sources
        .find(path)
        .filter(|id| sources.get(*id).syntax != Syntax::Text)
    {
        return Ok(id);
    }
    match crate::source::read_text(path) {
        Ok(text) => Ok(sources.add(path.to_path_buf(), display_name(path), text, syntax)),
        Err(ReadError::Io(e)) => Err(LoadError::Io(e)),
        Err(ReadError::NotUtf8 {
            lossy,
            offset,
            byte,
            ..
        }) => {
            let file = sources.add(path.to_path_buf(), display_name(path), lossy, Syntax::Text);
            Err(LoadError::NotUtf8 { file, offset, byte })
        }
    }
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
        LoadError::NotUtf8 { file, offset, byte } => {
            Diagnostic::error(Code::Io, format!("{shown} is not UTF-8 text"))
                .label(
                    Span::new(*file, *offset..*offset + '\u{FFFD}'.len_utf8()),
                    format!("byte 0x{byte:02X} is not UTF-8"),
                )
                .help("save the file as UTF-8; a workflow file is text in UTF-8")
        }
    };
    match at {
        Some(span) => d.label(span, "named here"),
        None => d,
    }
}

/// The params `path` declares, as written: what a form that starts it
/// asks for. None when it cannot be read or decoded.
pub(crate) fn params_of(path: &Path) -> Option<Vec<crate::model::Param>> {
    let mut sources = Sources::default();
    let mut diags = Diagnostics::default();
    let file = read(path, &mut sources).ok()?;
    decode(file, &sources, &mut diags).map(|wf| wf.params)
}
