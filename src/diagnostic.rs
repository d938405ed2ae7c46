//! Owns what a user is told when a workflow is wrong: the [`Diagnostic`] type
//! every front-end stage produces, its stable [`Code`]s, "did you mean"
//! suggestions, and the bridge to miette that renders a diagnostic with the
//! file name, line, column and an underlined excerpt.

use std::fmt;

use miette::{LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::source::{Sources, Span};

/// Stable diagnostic codes. They are part of conductor's interface: scripts and
/// docs may refer to them, so a code is never renamed or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    TomlSyntax,
    KdlSyntax,
    UnknownKey,
    WrongType,
    MissingKey,
    InvalidValue,
    ConflictingKeys,
    UnsupportedVersion,
    BadDuration,
    BadRegex,
    BadGlob,
    BadExpression,
    UnknownNeed,
    DuplicateNode,
    DuplicateKey,
    DuplicateItem,
    TooLarge,
    Cycle,
    UnknownAgent,
    TemplateSyntax,
    UndefinedVariable,
    SecretInTemplate,
    TemplateNotFound,
    TemplateRender,
    UnknownParam,
    ParamType,
    BadSet,
    FanOut,
    EmptyFanOut,
    WritesOverlap,
    UnquotedInShell,
    NodeKind,
    WorkflowNotFound,
    WorkflowRecursion,
    Io,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TomlSyntax => "conductor::toml_syntax",
            Self::KdlSyntax => "conductor::kdl_syntax",
            Self::UnknownKey => "conductor::unknown_key",
            Self::WrongType => "conductor::wrong_type",
            Self::MissingKey => "conductor::missing_key",
            Self::InvalidValue => "conductor::invalid_value",
            Self::ConflictingKeys => "conductor::conflicting_keys",
            Self::UnsupportedVersion => "conductor::unsupported_version",
            Self::BadDuration => "conductor::bad_duration",
            Self::BadRegex => "conductor::bad_regex",
            Self::BadGlob => "conductor::bad_glob",
            Self::BadExpression => "conductor::bad_expression",
            Self::UnknownNeed => "conductor::unknown_need",
            Self::DuplicateNode => "conductor::duplicate_node",
            Self::DuplicateKey => "conductor::duplicate_key",
            Self::DuplicateItem => "conductor::duplicate_item",
            Self::TooLarge => "conductor::too_large",
            Self::Cycle => "conductor::cycle",
            Self::UnknownAgent => "conductor::unknown_agent",
            Self::TemplateSyntax => "conductor::template_syntax",
            Self::UndefinedVariable => "conductor::undefined_variable",
            Self::SecretInTemplate => "conductor::secret_in_template",
            Self::TemplateNotFound => "conductor::template_not_found",
            Self::TemplateRender => "conductor::template_render",
            Self::UnknownParam => "conductor::unknown_param",
            Self::ParamType => "conductor::param_type",
            Self::BadSet => "conductor::bad_set",
            Self::FanOut => "conductor::fan_out",
            Self::EmptyFanOut => "conductor::empty_fan_out",
            Self::WritesOverlap => "conductor::writes_overlap",
            Self::UnquotedInShell => "conductor::unquoted_in_shell",
            Self::NodeKind => "conductor::node_kind",
            Self::WorkflowNotFound => "conductor::workflow_not_found",
            Self::WorkflowRecursion => "conductor::workflow_recursion",
            Self::Io => "conductor::io",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// An underlined span with a short text under it.
#[derive(Debug, Clone)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// One problem found in the user's input.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, message)
        }
    }

    #[must_use]
    pub fn label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Binds the diagnostic to the text it points into, for rendering.
    /// Labels in another file than the first label's (a `--set` value and the
    /// param it sets) become related reports, each with its own excerpt.
    pub fn to_report(&self, sources: &Sources) -> Report {
        let mut files: Vec<crate::source::FileId> = Vec::new();
        for l in &self.labels {
            if !files.contains(&l.span.file) {
                files.push(l.span.file);
            }
        }
        let part = |file: crate::source::FileId| {
            let f = sources.get(file);
            let mine: Vec<&Label> = self.labels.iter().filter(|l| l.span.file == file).collect();
            let spans: Vec<Span> = mine.iter().map(|l| l.span).collect();
            let excerpt = Excerpt::new(f.name.clone(), &f.text, &spans);
            let labels: Vec<LabeledSpan> = mine
                .iter()
                .zip(&excerpt.spans)
                .enumerate()
                .map(|(i, (l, &(start, end)))| {
                    let text = (!l.text.is_empty()).then(|| shorten(&l.text, LABEL_MAX));
                    let span = SourceSpan::from((start, end - start));
                    // The first label is where the problem is: the location
                    // the report names.
                    if i == 0 {
                        LabeledSpan::new_primary_with_span(text, span)
                    } else {
                        LabeledSpan::new_with_span(text, span)
                    }
                })
                .collect();
            (excerpt, labels)
        };
        let mut parts = files.into_iter().map(part);
        let (source, labels) = parts
            .next()
            .map_or((None, Vec::new()), |(s, l)| (Some(s), l));
        let related = parts
            .map(|(source, labels)| {
                let message = labels
                    .first()
                    .and_then(|l| l.label().map(str::to_string))
                    .unwrap_or_default();
                Report {
                    code: None,
                    severity: miette::Severity::Advice,
                    message,
                    help: None,
                    source: Some(source),
                    labels,
                    related: Vec::new(),
                }
            })
            .collect();
        Report {
            code: Some(self.code),
            severity: match self.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            message: shorten(&self.message, MESSAGE_MAX),
            help: self.help.clone(),
            source,
            labels,
            related,
        }
    }
}

/// A diagnostic bound to its source text; renders through miette.
#[derive(Debug)]
pub struct Report {
    code: Option<Code>,
    severity: miette::Severity,
    message: String,
    help: Option<String>,
    source: Option<Excerpt>,
    labels: Vec<LabeledSpan>,
    related: Vec<Report>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Report {}

impl miette::Diagnostic for Report {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.code.map(|c| Box::new(c) as Box<dyn fmt::Display>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

/// The most of a message, and of a label, a report prints: a message may
/// quote a value the user wrote, and a value may be a whole prompt.
const MESSAGE_MAX: usize = 400;
const LABEL_MAX: usize = 160;

/// The most characters of one source line a report shows, and how many of
/// them come before the column it points at.
const LINE_MAX: usize = 200;
const BEFORE_COLUMN: usize = 60;

/// `text`, cut to `max` characters with `…` when it is longer.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A file's text as a report shows it: a line longer than [`LINE_MAX`]
/// characters is cut to a window around the first label on it, with `…`
/// where it was cut, while the location a report names (line and column)
/// stays that of the whole file.
#[derive(Debug)]
struct Excerpt {
    name: String,
    text: String,
    /// The cut lines: where each starts and ends in `text`, the bytes cut
    /// from its start, and the bytes of the `…` that stands for them.
    cut: Vec<(usize, usize, usize, usize)>,
    /// The labels' spans, as offsets into `text`.
    spans: Vec<(usize, usize)>,
}

/// One line of a file in an [`Excerpt`]: where it starts in the file and
/// in the excerpt, and for a cut line the characters kept.
#[derive(Debug, Clone, Copy)]
struct Line {
    from: usize,
    len: usize,
    to: usize,
    /// `(first, end)` characters kept of a cut line.
    kept: Option<(usize, usize)>,
}

impl Excerpt {
    fn new(name: String, file: &str, spans: &[Span]) -> Self {
        let mut text = String::new();
        let mut lines: Vec<Line> = Vec::new();
        let mut cut = Vec::new();
        let mut from = 0;
        for line in file.split_inclusive('\n') {
            let body = line.strip_suffix('\n').unwrap_or(line);
            let to = text.len();
            let long = body.len() > LINE_MAX && body.chars().count() > LINE_MAX;
            let kept = long.then(|| {
                // The window starts a little before the first label on the line.
                let anchor = spans
                    .iter()
                    .map(|s| s.offset())
                    .filter(|&o| o >= from && o < from + line.len())
                    .min()
                    .map_or(0, |o| {
                        body[..body.floor_char_boundary(o - from)].chars().count()
                    });
                let start = anchor.saturating_sub(BEFORE_COLUMN);
                (start, (start + LINE_MAX).min(body.chars().count()))
            });
            match kept {
                None => text.push_str(line),
                Some((start, end)) => {
                    let byte = |c: usize| body.char_indices().nth(c).map_or(body.len(), |(b, _)| b);
                    if start > 0 {
                        text.push('…');
                    }
                    text.push_str(&body[byte(start)..byte(end)]);
                    if byte(end) < body.len() {
                        text.push('…');
                    }
                    // Columns are counted in bytes, as miette counts them.
                    let marker = if start > 0 { '…'.len_utf8() } else { 0 };
                    cut.push((to, text.len(), byte(start), marker));
                    if line.ends_with('\n') {
                        text.push('\n');
                    }
                }
            }
            lines.push(Line {
                from,
                len: line.len(),
                to,
                kept,
            });
            from += line.len();
        }
        let map = |offset: usize| -> usize {
            let i = lines
                .partition_point(|l| l.from <= offset)
                .saturating_sub(1);
            let Some(l) = lines.get(i) else {
                return text.len();
            };
            let within = (offset - l.from).min(l.len);
            let Some((start, end)) = l.kept else {
                return l.to + within;
            };
            let body = &file[l.from..l.from + l.len];
            let c = body[..body.floor_char_boundary(within)].chars().count();
            let marker = if start > 0 { '…'.len_utf8() } else { 0 };
            let shown: usize = body
                .chars()
                .skip(start)
                .take(c.clamp(start, end) - start)
                .map(char::len_utf8)
                .sum();
            l.to + marker + shown
        };
        let spans = spans
            .iter()
            .map(|s| {
                let a = map(s.offset());
                (a, map(s.end as usize).max(a))
            })
            .collect();
        Self {
            name,
            text,
            cut,
            spans,
        }
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        let at = inner.span().offset();
        // On a cut line, the column is that of the whole line.
        let (cut, marker) = self
            .cut
            .iter()
            .find(|&&(from, to, _, _)| at >= from && at <= to)
            .map_or((0, 0), |&(_, _, cut, marker)| (cut, marker));
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            (inner.column() + cut).saturating_sub(marker),
            inner.line_count(),
        )))
    }
}

/// What makes two diagnostics the same: code, message and where.
type SeenKey = (Code, String, Option<(u32, u32)>);

/// Collects diagnostics across stages; a stage goes on after a problem so that
/// a user sees every problem in one run.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
    /// A shared template or a fanned-out node can raise one problem many
    /// times; it is reported once.
    seen: std::collections::HashSet<SeenKey>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, d: Diagnostic) {
        let at = d.labels.first().map(|l| (l.span.file.0, l.span.start));
        if self.seen.insert((d.code, d.message.clone(), at)) {
            self.items.push(d);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sorts by file and position so that output reads top to bottom.
    pub fn sort(&mut self) {
        self.items.sort_by_key(|d| {
            d.labels
                .first()
                .map_or((u32::MAX, 0), |l| (l.span.file.0, l.span.start))
        });
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

/// The closest candidate to `given`, if one is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a, I>(given: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let given_lower = given.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (c, strsim::levenshtein(&given_lower, &c.to_lowercase())))
        .filter(|&(c, d)| d <= (c.chars().count().max(given.chars().count()) / 3).max(1) + 1)
        .min_by_key(|&(_, d)| d)
        .map(|(c, _)| c)
}

/// "did you mean `x`?" or a list of what is allowed, for help lines.
pub(crate) fn suggestion_help<'a, I>(given: &str, candidates: I, what: &str) -> Option<String>
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    if let Some(best) = did_you_mean(given, candidates.clone()) {
        return Some(format!("did you mean `{best}`?"));
    }
    let all: Vec<String> = candidates.into_iter().map(|c| format!("`{c}`")).collect();
    if all.is_empty() {
        None
    } else {
        Some(format!("{what}: {}", all.join(", ")))
    }
}
