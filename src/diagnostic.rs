//! Owns what a user is told when a workflow is wrong: the [`Diagnostic`] type
//! every front-end stage produces, its stable [`Code`]s, "did you mean"
//! suggestions, and the bridge to miette that renders a diagnostic with the
//! file name, line, column and an underlined excerpt.

use std::fmt;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceSpan};

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
    Cycle,
    UnknownAgent,
    TemplateSyntax,
    UndefinedVariable,
    TemplateNotFound,
    TemplateRender,
    UnknownParam,
    ParamType,
    BadSet,
    FanOut,
    EmptyFanOut,
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
            Self::Cycle => "conductor::cycle",
            Self::UnknownAgent => "conductor::unknown_agent",
            Self::TemplateSyntax => "conductor::template_syntax",
            Self::UndefinedVariable => "conductor::undefined_variable",
            Self::TemplateNotFound => "conductor::template_not_found",
            Self::TemplateRender => "conductor::template_render",
            Self::UnknownParam => "conductor::unknown_param",
            Self::ParamType => "conductor::param_type",
            Self::BadSet => "conductor::bad_set",
            Self::FanOut => "conductor::fan_out",
            Self::EmptyFanOut => "conductor::empty_fan_out",
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
            let labels: Vec<LabeledSpan> = self
                .labels
                .iter()
                .filter(|l| l.span.file == file)
                .map(|l| {
                    let text = (!l.text.is_empty()).then(|| l.text.clone());
                    LabeledSpan::new_with_span(
                        text,
                        SourceSpan::from((l.span.offset(), l.span.len())),
                    )
                })
                .collect();
            (
                NamedSource::new(f.name.clone(), Arc::clone(&f.text)),
                labels,
            )
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
            message: self.message.clone(),
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
    source: Option<NamedSource<Arc<str>>>,
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
