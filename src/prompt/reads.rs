//! Owns recording which templates one render pulls in with `include`,
//! `import`, `from` or `extends`, whatever the name is computed from, and
//! which environment variables it reads, so that a fingerprint covers
//! everything that shaped a prompt (docs/watch.md); and, while a plan renders with placeholders for what
//! exists only at run time, standing in for a template whose name is made
//! from one (`{% include "parts/" ~ item ~ ".md" %}` of a run-time item)
//! rather than calling it missing. Such a name is kept as a pattern, with
//! `*` where the placeholder was.
//!
//! Rendering is synchronous, so what one render pulls in is recorded for
//! the thread that renders, between [`recording`]'s start and end.

use std::cell::RefCell;
use std::collections::BTreeSet;

/// What a template loaded under this name stands for at plan time.
const STAND_IN: &str = "\u{0}stand-in:";

/// The templates one render pulled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reads {
    /// Names of templates looked up, found or not.
    pub templates: BTreeSet<String>,
    /// Names made from a run-time placeholder, with `*` for it: which
    /// template they are is known only when the instance runs.
    pub patterns: BTreeSet<String>,
    /// Environment variables read through `env`; [`ALL_ENV`] when the
    /// render went through all of them.
    pub env: BTreeSet<String>,
}

/// What [`Reads::env`] holds for a render that listed every variable.
pub(crate) const ALL_ENV: &str = "*";

#[derive(Debug)]
struct Recorder {
    reads: Reads,
    /// Placeholders are in the context: stand in for names made from them.
    planning: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Runs `render` and returns what it pulled in. With `planning`, a name made
/// from a placeholder loads a stand-in that prints as `<template NAME>`.
pub(crate) fn recording<T>(planning: bool, render: impl FnOnce() -> T) -> (T, Reads) {
    let outer = CURRENT.with(|c| {
        c.replace(Some(Recorder {
            reads: Reads::default(),
            planning,
        }))
    });
    let out = render();
    let reads = CURRENT
        .with(|c| c.replace(outer))
        .map(|r| r.reads)
        .unwrap_or_default();
    (out, reads)
}

/// The path-join hook of every environment: notes `name` and, when it is
/// made from a placeholder while planning, names its stand-in instead.
pub(super) fn looked_up(name: &str) -> std::borrow::Cow<'_, str> {
    CURRENT.with(|c| {
        let mut current = c.borrow_mut();
        let Some(rec) = current.as_mut() else {
            return std::borrow::Cow::Borrowed(name);
        };
        match pattern(name).filter(|_| rec.planning) {
            Some(p) => {
                rec.reads.patterns.insert(p);
                std::borrow::Cow::Owned(format!("{STAND_IN}{name}"))
            }
            None => {
                rec.reads.templates.insert(name.to_string());
                std::borrow::Cow::Borrowed(name)
            }
        }
    })
}

/// Notes that the render reads environment variable `name`.
pub(super) fn env_read(name: &str) {
    CURRENT.with(|c| {
        if let Some(rec) = c.borrow_mut().as_mut() {
            rec.reads.env.insert(name.to_string());
        }
    });
}

/// The text of a stand-in, when `name` names one.
pub(super) fn stand_in(name: &str) -> Option<String> {
    let shown = name.strip_prefix(STAND_IN)?;
    // Shown as text, never read as template syntax.
    Some(format!(
        "<template {}>",
        shown.replace(['{', '}', '%', '#'], "_")
    ))
}

/// `name` with `*` for each placeholder (`<item>`, `<json of plan.x>`) it
/// holds; `None` when it holds none.
pub(crate) fn pattern(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    let mut found = false;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        if rest[open + 1..open + close].contains('<') {
            out.push_str(&rest[..=open]);
            rest = &rest[open + 1..];
            continue;
        }
        out.push_str(&rest[..open]);
        out.push('*');
        rest = &rest[open + close + 1..];
        found = true;
    }
    out.push_str(rest);
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_stars() {
        assert_eq!(pattern("parts/<item>.md").as_deref(), Some("parts/*.md"));
        assert_eq!(
            pattern("<json of plan.kind>/<item>").as_deref(),
            Some("*/*")
        );
        assert_eq!(pattern("parts/a.md"), None);
        assert_eq!(pattern("a<b"), None);
    }

    #[test]
    fn a_recording_sees_only_its_own_render() {
        let ((), reads) = recording(false, || {
            let _ = looked_up("a.md");
        });
        assert!(reads.templates.contains("a.md"));
        let _ = looked_up("outside.md");
        let ((), again) = recording(true, || {
            assert!(looked_up("p/<item>.md").starts_with(STAND_IN));
        });
        assert!(again.templates.is_empty());
        assert!(again.patterns.contains("p/*.md"));
    }
}
