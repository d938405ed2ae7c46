//! Prints diagnostics: miette's graphical report on stderr (colour only on a
//! terminal and without `NO_COLOR`), or JSON records for `--json`.

use std::io::{IsTerminal, Write};

use miette::{GraphicalReportHandler, GraphicalTheme};
use serde::Serialize;

use crate::diagnostic::{Diagnostic, Severity};
use crate::source::Sources;

/// Renders one diagnostic as text, the way a user sees it.
pub(crate) fn to_text(d: &Diagnostic, sources: &Sources) -> String {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let width = if std::io::stderr().is_terminal() {
        terminal_width()
    } else {
        100
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(width)
        .with_links(false);
    let mut out = String::new();
    if handler
        .render_report(&mut out, &d.to_report(sources))
        .is_err()
    {
        out = format!("{}: {}\n", d.code, d.message);
    }
    out
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// Prints every diagnostic to stderr.
pub(crate) fn print_all<'a>(diags: impl IntoIterator<Item = &'a Diagnostic>, sources: &Sources) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{}", to_text(d, sources));
    }
}

/// Prints why an apply could not start, with its help, and returns its
/// exit code.
pub(crate) fn apply_error(e: &crate::runner::ApplyError) -> u8 {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    if let Some(help) = e.help() {
        let _ = writeln!(err, "  help: {help}");
    }
    e.exit_code()
}

/// A diagnostic for `--json`: where it is as a line and column, not bytes.
#[derive(Debug, Serialize)]
pub(crate) struct JsonDiagnostic {
    pub code: &'static str,
    pub severity: &'static str,
    pub message: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub help: Option<String>,
}

pub(crate) fn to_json(d: &Diagnostic, sources: &Sources) -> JsonDiagnostic {
    let at = d.labels.first().map(|l| {
        let f = sources.get(l.span.file);
        let before = f.text.get(..l.span.offset()).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
        (f.name.clone(), line, column)
    });
    JsonDiagnostic {
        code: d.code.as_str(),
        severity: match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        message: d.message.clone(),
        file: at.as_ref().map(|a| a.0.clone()),
        line: at.as_ref().map(|a| a.1),
        column: at.as_ref().map(|a| a.2),
        help: d.help.clone(),
    }
}
