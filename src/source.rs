//! Owns the text of every file a compile reads (workflows, sub-workflows,
//! templates, the command line) and the byte spans that point into it, so that
//! every later stage can report a problem at a file, line and column without
//! carrying the text around itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which surface syntax a workflow file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Toml,
    Kdl,
    /// Not a workflow: a template, or the command line.
    Text,
}

impl Syntax {
    /// Picks the syntax from a file extension; `None` when it is neither.
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Some(Self::Toml),
            Some("kdl") => Some(Self::Kdl),
            _ => None,
        }
    }

    /// Spells a schema key the way this syntax writes it (`max_iterations` in
    /// TOML, `max-iterations` in KDL), so that messages use the file's own words.
    pub fn spell(self, key: &str) -> String {
        match self {
            Self::Kdl => key.replace('_', "-"),
            Self::Toml | Self::Text => key.to_string(),
        }
    }
}

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, range: std::ops::Range<usize>) -> Self {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Self {
            file,
            start: clamp(range.start),
            end: clamp(range.end.max(range.start)),
        }
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.end == self.start
    }

    pub fn offset(self) -> usize {
        self.start as usize
    }
}

/// One loaded file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path used to open it (absolute for files loaded by the compiler).
    pub path: PathBuf,
    /// The name shown in diagnostics: relative to the current directory when it can be.
    pub name: String,
    pub text: Arc<str>,
    pub syntax: Syntax,
}

/// Every file read during one compile.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, path: PathBuf, name: String, text: String, syntax: Syntax) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).unwrap_or(u32::MAX));
        self.files.push(SourceFile {
            path,
            name,
            text: Arc::from(text),
            syntax,
        });
        id
    }

    /// Every file read, in the order they were added.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files
            .iter()
            .position(|f| f.path == path)
            .and_then(|i| u32::try_from(i).ok())
            .map(FileId)
    }

    /// The text a span covers.
    pub fn slice(&self, span: Span) -> &str {
        let text = &self.get(span.file).text;
        text.get(span.start as usize..span.end as usize)
            .unwrap_or_default()
    }
}

/// Shows `path` relative to the current directory when it lies below it, as a
/// user would type it; otherwise as it is.
pub(crate) fn display_name(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let shown = cwd
        .as_deref()
        .and_then(|cwd| path.strip_prefix(cwd).ok())
        .unwrap_or(path);
    if shown.as_os_str().is_empty() {
        ".".to_string()
    } else {
        shown.display().to_string()
    }
}

/// Why a text file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Its text with each invalid sequence replaced by U+FFFD, and where
    /// the first one is: `offset` is a byte offset into that text.
    #[error("it is not UTF-8: byte 0x{byte:02X} at line {line}, column {column}")]
    NotUtf8 {
        lossy: String,
        offset: usize,
        line: usize,
        column: usize,
        byte: u8,
    },
}

/// Reads a text file; when it is not UTF-8, says where it stops being so.
pub(crate) fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(path)?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let byte = bytes.get(offset).copied().unwrap_or(0);
            // The valid prefix is kept byte for byte, so `offset` is the
            // same in the lossy text.
            let lossy = String::from_utf8_lossy(&bytes).into_owned();
            let before = &lossy[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(ReadError::NotUtf8 {
                lossy,
                offset,
                line,
                column,
                byte,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_utf8_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, b"a = 1\n# caf\xE9\n").unwrap();
        match read_text(&path) {
            Err(ReadError::NotUtf8 {
                lossy,
                offset,
                line,
                column,
                byte,
            }) => {
                assert_eq!((line, column, byte), (2, 6, 0xE9));
                assert_eq!(&lossy[offset..offset + 3], "\u{FFFD}");
            }
            other => panic!("{other:?}"),
        }
    }
}
