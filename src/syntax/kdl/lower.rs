//! Lowers KDL 2.0 text into the spanned tree, so that a `.kdl` workflow reaches
//! the decoder as the very tree its TOML twin would. KDL has only nodes with
//! arguments, properties and children; what each becomes depends on where it
//! is written (the shapes live in `super::shape`). This module owns the walk,
//! the spans (always the user's own text and spelling), and the errors only
//! the lowering can see: KDL syntax, keys set twice, and values conductor has
//! no use for (`#null`, type annotations, integers beyond 64 bits).

use std::ops::Range;

use kdl::{KdlDocument, KdlEntry, KdlError, KdlIdentifier, KdlNode, KdlValue};
use miette::SourceSpan;

use super::shape::{Ctx, Keyed, Shape};
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{FileId, Span};
use crate::syntax::tree::{Key, Table, Value, ValueKind};

/// Parses `text`; on errors returns every one found and no tree.
pub(crate) fn parse(file: FileId, text: &str) -> Result<Table, Vec<Diagnostic>> {
    if let Some(at) = too_deep(text) {
        return Err(vec![
            Diagnostic::error(
                Code::KdlSyntax,
                format!("invalid KDL: blocks nested more than {MAX_DEPTH} deep"),
            )
            .label(Span::new(file, at..at + 1), "too deep")
            .help("a workflow nests a few levels at most; look for a `{` that is never closed"),
        ]);
    }
    let doc: KdlDocument = text.parse().map_err(|e| syntax_errors(file, text, &e))?;
    let mut lower = Lower {
        file,
        text,
        diags: Vec::new(),
    };
    let root = lower.table(Ctx::Root, &[], doc.nodes(), Span::new(file, 0..text.len()));
    if lower.diags.is_empty() {
        Ok(root)
    } else {
        Err(lower.diags)
    }
}

/// kdl parses blocks recursively, and a few dozen levels overflow the stack
/// of a test thread in a debug build: an abort, not an error. Real workflows
/// nest a handful of levels.
const MAX_DEPTH: usize = 32;

/// Where the braces first nest too deep. Braces in strings count too, which
/// is fine for a bound this loose.
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' if depth == MAX_DEPTH => return Some(i),
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

const SYNTAX_HELP: &str =
    "conductor reads KDL 2.0 (booleans are `#true` and `#false`); see https://kdl.dev";

/// When `written` is a value with a unit left bare (`timeout=30m`, which
/// KDL reads as a number followed by garbage): how to write it.
fn unquoted_unit(written: &str) -> Option<String> {
    let (key, value) = written.trim().split_once('=')?;
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &value[digits.len()..];
    let number = !digits.is_empty() && digits.parse::<f64>().is_ok();
    (number && !unit.is_empty() && !key.is_empty())
        .then(|| format!("quote a value with a unit: {key}=\"{value}\""))
}

fn syntax_errors(file: FileId, text: &str, error: &KdlError) -> Vec<Diagnostic> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for d in &error.diagnostics {
        let range = narrow(text, d.span);
        let message = d.message.as_deref().unwrap_or("unexpected text").trim();
        // kdl reports some errors twice, once per parser that gave up.
        if seen.contains(&(range.clone(), message)) {
            continue;
        }
        seen.push((range.clone(), message));
        // kdl capitalises its messages; ours continue a sentence.
        let mut chars = message.chars();
        let message: String = chars
            .next()
            .map(|c| c.to_lowercase().chain(chars).collect())
            .unwrap_or_default();
        let help = unquoted_unit(text.get(range.clone()).unwrap_or_default())
            .unwrap_or_else(|| d.help.as_deref().unwrap_or(SYNTAX_HELP).to_string());
        out.push(
            Diagnostic::error(Code::KdlSyntax, format!("invalid KDL: {message}"))
                .label(Span::new(file, range), d.label.as_deref().unwrap_or("here"))
                .help(help),
        );
    }
    if out.is_empty() {
        let here = Span::new(file, 0..0);
        out.push(
            Diagnostic::error(Code::KdlSyntax, "invalid KDL")
                .label(here, "here")
                .help(SYNTAX_HELP),
        );
    }
    out
}

/// kdl 6.7.1 gives a bad property value a span from the start of the file to
/// the error; point at the property itself (`key=value`) instead.
fn narrow(text: &str, span: SourceSpan) -> Range<usize> {
    let start = span.offset().min(text.len());
    let end = (start + span.len()).min(text.len());
    let Some(head) = text.get(..end).filter(|_| start == 0 && end > 0) else {
        return start..end;
    };
    let line_start = head.rfind('\n').map_or(0, |i| i + 1);
    let line = &head[line_start..];
    let from = line_start
        + match line.rfind('=') {
            // Back over the key, which may be spaced from its `=`.
            Some(eq) => line[..eq]
                .trim_end()
                .trim_end_matches(|c: char| !c.is_whitespace())
                .len(),
            None => line.len() - line.trim_start().len(),
        };
    // The span stops where the value went wrong; show the whole value.
    let rest = text.get(end..).unwrap_or_default();
    let to = end
        + rest
            .find(|c: char| c.is_whitespace() || matches!(c, ';' | '{' | '}'))
            .unwrap_or(rest.len());
    from..from + text.get(from..to).map_or(0, |s| s.trim_end().len())
}

/// How an entry combines with one already under its key.
#[derive(Clone, Copy, PartialEq)]
enum Merge {
    Once,
    /// Lists concatenate.
    Append,
    /// Members of a keyed group join the group; their ids must differ.
    Member(Keyed),
}

struct Lower<'t> {
    file: FileId,
    text: &'t str,
    diags: Vec<Diagnostic>,
}

impl Lower<'_> {
    /// A table of the properties among `entries` and of `children`, in the
    /// order written; arguments are the caller's business.
    fn table(&mut self, ctx: Ctx, entries: &[KdlEntry], children: &[KdlNode], span: Span) -> Table {
        let mut table = Table::new(span);
        let mut merges = Vec::new();
        for (entry, name) in entries.iter().filter_map(|e| Some((e, e.name()?))) {
            let mut key = self.key(ctx, name);
            let Some(value) = self.scalar(entry) else {
                continue;
            };
            let (value, merge) = match ctx.shape(&key.name) {
                Shape::List => (listed(value), Merge::Append),
                Shape::ForEach => (listed(value), Merge::Once),
                Shape::Command => {
                    key.name = "commands".to_string();
                    (listed(value), Merge::Append)
                }
                _ => (value, Merge::Once),
            };
            self.put(&mut table, &mut merges, key, value, merge);
        }
        for node in children {
            if let Some((key, value, merge)) = self.child(ctx, node) {
                self.put(&mut table, &mut merges, key, value, merge);
            }
        }
        table
    }

    fn child(&mut self, ctx: Ctx, node: &KdlNode) -> Option<(Key, Value, Merge)> {
        if node.ty().is_some() {
            let span = self.trimmed(node.span().offset()..node.name().span().offset());
            self.annotation(span);
        }
        let mut key = self.key(ctx, node.name());
        let (value, merge) = match ctx.shape(&key.name) {
            Shape::Plain => (self.plain(ctx.undeclared(), node)?, Merge::Once),
            Shape::List => (self.list(ctx.undeclared(), node)?, Merge::Append),
            Shape::Table(inner) => (self.held(inner, node)?, Merge::Once),
            Shape::Param if declares_list(node) => (self.held(Ctx::ListParam, node)?, Merge::Once),
            Shape::Param => (self.held(Ctx::Param, node)?, Merge::Once),
            Shape::ForEach => (self.for_each(node)?, Merge::Once),
            Shape::Command => {
                key.name = "commands".to_string();
                (listed(self.command(&key, node)?), Merge::Append)
            }
            Shape::Keyed(keyed) => return self.member(keyed, key, node),
        };
        Some((key, value, merge))
    }

    /// `command` in `success` is one shell command: one argument.
    fn command(&mut self, key: &Key, node: &KdlNode) -> Option<Value> {
        if let [arg] = args(node).as_slice()
            && !has_props(node)
            && node.children().is_none()
        {
            return self.scalar(arg);
        }
        let spelled = &key.spelled;
        self.diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                format!("`{spelled}` takes exactly one argument: the shell command"),
            )
            .label(self.node_span(node), "one command per line")
            .help(format!(
                "quote the whole command, as in `{spelled} \"go test ./...\"`"
            )),
        );
        None
    }

    /// `node "ID" ...` as the one-member group `nodes = { ID = ... }`.
    fn member(&mut self, keyed: Keyed, key: Key, node: &KdlNode) -> Option<(Key, Value, Merge)> {
        let (spelled, what) = (&key.spelled, keyed.id);
        let span = self.node_span(node);
        let args = args(node);
        if let [_, extra @ ..] = args.as_slice()
            && !extra.is_empty()
        {
            self.diags.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`{spelled}` takes one argument: its {what}"),
                )
                .label(self.cover(extra), "not used")
                .help("set everything else as properties or children"),
            );
        }
        // Lowered even without a usable id, for the errors inside.
        let body = self.table(keyed.ctx, node.entries(), children(node), span);
        let Some(first) = args.first() else {
            self.diags.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`{spelled}` needs its {what} as the first argument"),
                )
                .label(key.span, format!("no {what}"))
                .help(format!(
                    "write `{spelled} \"{}\" {{ ... }}`",
                    what.to_uppercase()
                )),
            );
            return None;
        };
        let id = self.scalar(first)?;
        let ValueKind::String(name) = id.kind else {
            self.diags.push(
                Diagnostic::error(
                    Code::WrongType,
                    format!(
                        "the {what} of `{spelled}` must be a string, not {}",
                        id.type_name()
                    ),
                )
                .label(id.span, "expected a string"),
            );
            return None;
        };
        let id = Key {
            name: name.clone(),
            spelled: name,
            span: id.span,
        };
        let mut members = Table::new(span);
        members
            .entries
            .push((id, Value::new(ValueKind::Table(body), span)));
        let group = Key {
            name: keyed.group.to_string(),
            ..key
        };
        Some((
            group,
            Value::new(ValueKind::Table(members), span),
            Merge::Member(keyed),
        ))
    }

    fn put(
        &mut self,
        table: &mut Table,
        merges: &mut Vec<Merge>,
        key: Key,
        value: Value,
        merge: Merge,
    ) {
        let Some(i) = table.entries.iter().position(|(k, _)| k.name == key.name) else {
            table.entries.push((key, value));
            merges.push(merge);
            return;
        };
        let (first, old) = &mut table.entries[i];
        let span = join(old.span, value.span);
        match (merge, merges[i], &mut old.kind, value.kind) {
            (Merge::Append, Merge::Append, ValueKind::Array(items), ValueKind::Array(more)) => {
                items.extend(more);
                old.span = span;
            }
            (
                Merge::Member(keyed),
                Merge::Member(_),
                ValueKind::Table(group),
                ValueKind::Table(new),
            ) => {
                (old.span, group.span) = (span, span);
                for (id, body) in new.entries {
                    let Some((twin, _)) = group.entries.iter().find(|(k, _)| k.name == id.name)
                    else {
                        group.entries.push((id, body));
                        continue;
                    };
                    let (spelled, what) = (&key.spelled, keyed.id);
                    self.diags.push(
                        Diagnostic::error(
                            keyed.code,
                            format!("{spelled} `{}` is defined twice", id.name),
                        )
                        .label(twin.span, "first defined here")
                        .label(id.span, "defined again here")
                        .help(format!(
                            "each {spelled} needs its own {what}; rename or remove one"
                        )),
                    );
                }
            }
            _ => self.diags.push(
                Diagnostic::error(
                    Code::DuplicateKey,
                    format!("`{}` is set twice", key.spelled),
                )
                .label(first.span, "first set here")
                .label(key.span, "set again here")
                .help("keep one of them"),
            ),
        }
    }

    /// A scalar key, or one nobody declared: `true` when the node is bare,
    /// else what it holds.
    fn plain(&mut self, ctx: Ctx, node: &KdlNode) -> Option<Value> {
        if node.entries().is_empty() && node.children().is_none() {
            return Some(Value::new(ValueKind::Bool(true), self.node_span(node)));
        }
        self.held(ctx, node)
    }

    /// What a node holds: its arguments when it has nothing else, else a
    /// table of its properties and children (empty for a bare node).
    fn held(&mut self, ctx: Ctx, node: &KdlNode) -> Option<Value> {
        let args = args(node);
        if !args.is_empty() && !has_props(node) && node.children().is_none() {
            return if let [arg] = args.as_slice() {
                self.scalar(arg)
            } else {
                Some(self.array(&args))
            };
        }
        if !args.is_empty() {
            // Dropping them silently would lose what the user wrote.
            let spelled = node.name().value();
            self.diags.push(
                Diagnostic::error(
                    Code::InvalidValue,
                    format!("`{spelled}` has arguments as well as properties or children"),
                )
                .label(self.cover(&args), "these arguments")
                .help(format!(
                    "write either `{spelled} value` or `{spelled} key=value {{ ... }}`"
                )),
            );
        }
        let span = self.node_span(node);
        let table = self.table(ctx, node.entries(), children(node), span);
        Some(Value::new(ValueKind::Table(table), span))
    }

    /// A list key takes one or more arguments; anything else is lowered as
    /// written, for the decoder to report (KDL has no empty list).
    fn list(&mut self, ctx: Ctx, node: &KdlNode) -> Option<Value> {
        let args = args(node);
        if args.is_empty() || has_props(node) || node.children().is_some() {
            return self.plain(ctx, node);
        }
        Some(self.array(&args))
    }

    /// `for-each "a" "b"` and `for-each { item ... }` are lists of items;
    /// with properties or other children it names where the items come from.
    fn for_each(&mut self, node: &KdlNode) -> Option<Value> {
        let args = args(node);
        let items = children(node);
        if has_props(node)
            || items.iter().any(|n| n.name().value() != "item")
            || args.len() + items.len() == 0
        {
            return self.plain(Ctx::Generic, node);
        }
        let mut array = self.array(&args);
        if node.children().is_some() {
            array.span = self.node_span(node);
        }
        if let ValueKind::Array(values) = &mut array.kind {
            values.extend(items.iter().filter_map(|item| self.plain(Ctx::User, item)));
        }
        Some(array)
    }

    fn array(&mut self, args: &[&KdlEntry]) -> Value {
        let items = args.iter().filter_map(|a| self.scalar(a)).collect();
        Value::new(ValueKind::Array(items), self.cover(args))
    }

    fn scalar(&mut self, entry: &KdlEntry) -> Option<Value> {
        let span = self.value_span(entry);
        if entry.ty().is_some() {
            self.annotation(self.span(entry.span()));
            return None;
        }
        let kind = match entry.value() {
            KdlValue::String(s) => ValueKind::String(s.clone()),
            KdlValue::Float(f) => ValueKind::Float(*f),
            KdlValue::Bool(b) => ValueKind::Bool(*b),
            KdlValue::Integer(i) => {
                // Out of i64 range: keep the text; a typed read will report it.
                i64::try_from(*i).map_or_else(
                    |_| ValueKind::HugeInteger(i.to_string()),
                    ValueKind::Integer,
                )
            }
            KdlValue::Null => {
                self.diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        "conductor has no null values; leave the key out",
                    )
                    .label(span, "null"),
                );
                return None;
            }
        };
        Some(Value::new(kind, span))
    }

    fn annotation(&mut self, span: Span) {
        self.diags.push(
            Diagnostic::error(
                Code::InvalidValue,
                "type annotations are not used by conductor",
            )
            .label(span, "type annotation")
            .help("remove the `(...)`: a value's type is the way it is written"),
        );
    }

    fn key(&self, ctx: Ctx, name: &KdlIdentifier) -> Key {
        let spelled = name.value().to_string();
        let name_span = self.span(name.span());
        let name = if ctx.converts() {
            spelled.replace('-', "_")
        } else {
            spelled.clone()
        };
        Key {
            name,
            spelled,
            span: name_span,
        }
    }

    fn span(&self, span: SourceSpan) -> Span {
        let start = span.offset().min(self.text.len());
        Span::new(self.file, start..(start + span.len()).min(self.text.len()))
    }

    /// `range` without the blanks at its end, which kdl counts as part of a
    /// node but a label should not.
    fn trimmed(&self, range: Range<usize>) -> Span {
        let written = self
            .text
            .get(range.clone())
            .map_or(range.len(), |t| t.trim_end().len());
        Span::new(self.file, range.start..range.start + written)
    }

    fn node_span(&self, node: &KdlNode) -> Span {
        let span = self.span(node.span());
        self.trimmed(span.offset()..span.end as usize)
    }

    /// A property's span covers `key=value`; its value is the last
    /// `value_repr` bytes of it.
    fn value_span(&self, entry: &KdlEntry) -> Span {
        let span = self.span(entry.span());
        match (entry.name(), entry.format()) {
            (Some(_), Some(format)) if format.value_repr.len() <= span.len() => Span {
                start: span.end - u32::try_from(format.value_repr.len()).unwrap_or(0),
                ..span
            },
            _ => span,
        }
    }

    /// From the first of `args` to the last.
    fn cover(&self, args: &[&KdlEntry]) -> Span {
        match (args.first(), args.last()) {
            (Some(first), Some(last)) => join(self.value_span(first), self.value_span(last)),
            _ => Span::new(self.file, 0..0),
        }
    }
}

fn join(a: Span, b: Span) -> Span {
    Span {
        start: a.start.min(b.start),
        end: a.end.max(b.end),
        ..a
    }
}

/// A property written where a list belongs: a one-item list.
fn listed(value: Value) -> Value {
    let span = value.span;
    Value::new(ValueKind::Array(vec![value]), span)
}

fn args(node: &KdlNode) -> Vec<&KdlEntry> {
    node.entries()
        .iter()
        .filter(|e| e.name().is_none())
        .collect()
}

fn has_props(node: &KdlNode) -> bool {
    node.entries().iter().any(|e| e.name().is_some())
}

fn children(node: &KdlNode) -> &[KdlNode] {
    node.children().map_or(&[], KdlDocument::nodes)
}

/// Whether a param node says `type="list"`, as a property or a child.
fn declares_list(node: &KdlNode) -> bool {
    let is_list = |e: &KdlEntry| e.value().as_string() == Some("list");
    node.entries()
        .iter()
        .any(|e| e.name().is_some_and(|n| n.value() == "type") && is_list(e))
        || children(node).iter().any(|c| {
            c.name().value() == "type"
                && matches!(c.entries(), [e] if e.name().is_none() && is_list(e))
        })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::parse;
    use crate::diagnostic::{Code, Diagnostic};
    use crate::source::{FileId, Span};
    use crate::syntax::tree::{Key, Table, Value, ValueKind};

    const FILE: FileId = FileId(0);

    #[track_caller]
    fn kdl(text: &str) -> Table {
        parse(FILE, text).unwrap_or_else(|d| panic!("{text}\n{d:#?}"))
    }

    #[track_caller]
    fn errors(text: &str) -> Vec<Diagnostic> {
        parse(FILE, text).expect_err(text)
    }

    fn slice(text: &str, span: Span) -> &str {
        &text[span.start as usize..span.end as usize]
    }

    const NOWHERE: Span = Span {
        file: FILE,
        start: 0,
        end: 0,
    };

    /// Spans and spellings differ between the syntaxes by design; nothing
    /// else may.
    fn bare(t: &Table) -> Table {
        let entries = t.entries.iter().map(|(k, v)| {
            let key = Key {
                name: k.name.clone(),
                spelled: k.name.clone(),
                span: NOWHERE,
            };
            (key, bare_value(v))
        });
        Table {
            span: NOWHERE,
            entries: entries.collect(),
        }
    }

    fn bare_value(v: &Value) -> Value {
        let kind = match &v.kind {
            ValueKind::Array(items) => ValueKind::Array(items.iter().map(bare_value).collect()),
            ValueKind::Table(t) => ValueKind::Table(bare(t)),
            other => other.clone(),
        };
        Value::new(kind, NOWHERE)
    }

    #[track_caller]
    fn twin(kdl_text: &str, toml_text: &str) {
        let toml = crate::syntax::toml::parse(FILE, toml_text)
            .unwrap_or_else(|d| panic!("{toml_text}\n{d:#?}"));
        assert_eq!(bare(&kdl(kdl_text)), bare(&toml));
    }

    /// The value at a dotted path of canonical names.
    #[track_caller]
    fn at<'t>(t: &'t Table, path: &str) -> &'t Value {
        let (first, rest) = path.split_once('.').unwrap_or((path, ""));
        let v = t.get(first).unwrap_or_else(|| panic!("no `{first}`"));
        if rest.is_empty() {
            v
        } else {
            at(v.as_table().expect("a table"), rest)
        }
    }

    fn key<'t>(t: &'t Table, name: &str) -> &'t Key {
        &t.entries
            .iter()
            .find(|(k, _)| k.name == name)
            .expect(name)
            .0
    }

    #[test]
    fn examples_lower_like_their_toml_twins() {
        twin(
            include_str!("../../../examples/hello/workflow.kdl"),
            include_str!("../../../examples/hello/workflow.toml"),
        );
        twin(
            include_str!("../../../workflows/session.kdl"),
            include_str!("../../../workflows/session.toml"),
        );
    }

    #[test]
    fn root_keys() {
        twin(
            r#"
            version 1
            name "x"
            description "d"
            project "p"
            root "../runs"
            output "last"
            prompts library="prompts"
            success { command "go build ./..."; command "go test ./..."; }
            limits budget-usd=5 max-agents=10
            "#,
            r#"
            version = 1
            name = "x"
            description = "d"
            project = "p"
            root = "../runs"
            output = "last"
            prompts = { library = ["prompts"] }
            success = { commands = ["go build ./...", "go test ./..."] }
            limits = { budget_usd = 5, max_agents = 10 }
            "#,
        );
        twin(
            r#"prompts { library "prompts" "lib"; }
            success { commands "a" "b"; command "c"; }
            limits { budget-usd 2.5; }"#,
            r#"prompts = { library = ["prompts", "lib"] }
            success = { commands = ["a", "b", "c"] }
            limits = { budget_usd = 2.5 }"#,
        );
    }

    #[test]
    fn params() {
        twin(
            r#"params {
                repo type="path" default=".." { description "The checkout."; }
                agent type="string" default="claude" { enum "claude" "codex"; }
                rounds type="int" default=2
                dry-run type="bool" default=#false
                files type="list" { default "README.md"; }
                pair type="list" default="a"
                late { default "a"; type "list"; }
                several type="string" { default "a" "b"; }
                single enum="x"
            }"#,
            r#"[params]
            repo = { type = "path", default = "..", description = "The checkout." }
            agent = { type = "string", default = "claude", enum = ["claude", "codex"] }
            rounds = { type = "int", default = 2 }
            dry-run = { type = "bool", default = false }
            files = { type = "list", default = ["README.md"] }
            pair = { type = "list", default = ["a"] }
            late = { default = ["a"], type = "list" }
            several = { type = "string", default = ["a", "b"] }
            single = { enum = ["x"] }"#,
        );
    }

    #[test]
    fn agents() {
        twin(
            r#"agent "claude" kind="claude" model="sonnet" {
                command "claude" "-p"
                args "--verbose"
                extra-args "--x"
                extra-args "--y"
                base-url "http://x"
                api-key-env "KEY"
                env API_KEY="k" { my-var "v"; }
                price input-per-mtok=3 output-per-mtok=15
            }
            agent "echo" kind="command" command="cat""#,
            r#"[agents.claude]
            kind = "claude"
            model = "sonnet"
            command = ["claude", "-p"]
            args = ["--verbose"]
            extra_args = ["--x", "--y"]
            base_url = "http://x"
            api_key_env = "KEY"
            env = { API_KEY = "k", my-var = "v" }
            price = { input_per_mtok = 3, output_per_mtok = 15 }

            [agents.echo]
            kind = "command"
            command = ["cat"]"#,
        );
    }

    #[test]
    fn nodes_and_defaults() {
        twin(
            r#"
            defaults agent="echo" workdir=".." {
                stop exit-zero=#true max-iterations=1
                env HOME="/tmp"
                on-failure "continue"
                fallback-agents "codex"
            }
            node "a" agent="echo" {
                description "first"
                needs "x" "y"
                needs "z"
                inputs "src/**"
                max-parallel 2
                max-items 50
                workdir "w"
                gate "{{ true }}"
                prompt "hi"
                with a="1" b=2 { c #true; list "x" "y"; }
                for-each "only"
                matrix agent="claude" { model "m1" "m2"; my-axis 1; }
                stop command="go test" max-iterations=8 { timeout "30m"; budget-usd 2.5; }
                output format="json" schema="x.json"
            }
            node "b" needs="a" prompt="inline" workflow="lib/x.kdl" for-each="one"
            node "c" {
                prompt template="roles/x.md" { vars focus="perf" { files "a.md" "b.md"; }; }
                for-each glob="docs/*.md"
            }
            node "d" { for-each from="plan" path="json.tasks"; }
            node "e" { for-each from="plan" lines=#true; }
            node "f" { for-each each-of="A"; }
            node "g" { for-each { item "a"; item x=1 y=2; item "b" "c"; }; }
            node "h" { for-each "a" "b"; }
            node "i" { for-each { glob "*.md"; }; }
            node "j" { prompt { template "t.md"; }; }
            "#,
            r#"
            [defaults]
            agent = "echo"
            workdir = ".."
            stop = { exit_zero = true, max_iterations = 1 }
            env = { HOME = "/tmp" }
            on_failure = "continue"
            fallback_agents = ["codex"]

            [nodes.a]
            agent = "echo"
            description = "first"
            needs = ["x", "y", "z"]
            inputs = ["src/**"]
            max_parallel = 2
            max_items = 50
            workdir = "w"
            gate = "{{ true }}"
            prompt = "hi"
            with = { a = "1", b = 2, c = true, list = ["x", "y"] }
            for_each = ["only"]
            matrix = { agent = ["claude"], model = ["m1", "m2"], my-axis = [1] }
            stop = { command = "go test", max_iterations = 8, timeout = "30m", budget_usd = 2.5 }
            output = { format = "json", schema = "x.json" }

            [nodes.b]
            needs = ["a"]
            prompt = "inline"
            workflow = "lib/x.kdl"
            for_each = ["one"]

            [nodes.c]
            prompt = { template = "roles/x.md", vars = { focus = "perf", files = ["a.md", "b.md"] } }
            for_each = { glob = "docs/*.md" }

            [nodes.d]
            for_each = { from = "plan", path = "json.tasks" }
            [nodes.e]
            for_each = { from = "plan", lines = true }
            [nodes.f]
            for_each = { each_of = "A" }
            [nodes.g]
            for_each = ["a", { x = 1, y = 2 }, ["b", "c"]]
            [nodes.h]
            for_each = ["a", "b"]
            [nodes.i]
            for_each = { glob = "*.md" }
            [nodes.j]
            prompt = { template = "t.md" }
            "#,
        );
    }

    #[test]
    fn keeps_the_users_spelling_and_spans() {
        let text = "version 1\nnode \"a\" agent=\"echo\" {\n    needs \"x\" \"y\"\n    stop max-iterations=3\n}\n";
        let root = kdl(text);
        assert_eq!(root.span, Span::new(FILE, 0..text.len()));
        let nodes = at(&root, "nodes").as_table().expect("nodes");
        assert_eq!(slice(text, key(nodes, "a").span), "\"a\"");
        assert_eq!(
            slice(text, at(&root, "nodes.a").span),
            &text[10..text.len() - 1]
        );
        assert_eq!(
            slice(
                text,
                key(at(&root, "nodes.a").as_table().expect("a"), "agent").span
            ),
            "agent"
        );
        assert_eq!(slice(text, at(&root, "nodes.a.agent").span), "\"echo\"");
        assert_eq!(slice(text, at(&root, "nodes.a.needs").span), "\"x\" \"y\"");
        assert_eq!(
            slice(text, at(&root, "nodes.a.stop").span),
            "stop max-iterations=3"
        );
        let stop = at(&root, "nodes.a.stop").as_table().expect("stop");
        let k = key(stop, "max_iterations");
        assert_eq!(
            (k.spelled.as_str(), slice(text, k.span)),
            ("max-iterations", "max-iterations")
        );
        assert_eq!(
            slice(text, at(&root, "nodes.a.stop.max_iterations").span),
            "3"
        );
    }

    #[test]
    fn two_nodes_with_one_id() {
        let text = "node \"test\" { prompt \"a\"; }\nnode \"b\"\nnode \"test\" { prompt \"b\"; }";
        let d = errors(text);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(
            (d[0].code, d[0].message.as_str()),
            (Code::DuplicateNode, "node `test` is defined twice")
        );
        let labelled: Vec<usize> = d[0].labels.iter().map(|l| l.span.offset()).collect();
        assert_eq!(labelled, [5, text.rfind("\"test\"").expect("twice")]);
        assert!(
            d[0].labels
                .iter()
                .all(|l| slice(text, l.span) == "\"test\"")
        );

        let d = errors("agent \"echo\" kind=\"command\"\nagent \"echo\" kind=\"claude\"");
        assert_eq!(
            (d[0].code, d[0].message.as_str()),
            (Code::DuplicateKey, "agent `echo` is defined twice")
        );
    }

    #[test]
    fn a_key_set_twice() {
        for (text, twice) in [
            ("name \"a\"\nname \"b\"", ["name", "name"]),
            (
                "node \"a\" agent=\"x\" { agent \"y\"; }",
                ["agent", "agent"],
            ),
            (
                "node \"a\" { stop max-iterations=1 max_iterations=2; }",
                ["max-iterations", "max_iterations"],
            ),
            ("defaults { stop; stop done-file=#true; }", ["stop", "stop"]),
            (
                "node \"a\" { for-each \"x\"; for-each \"y\"; }",
                ["for-each", "for-each"],
            ),
            ("node \"a\" { with x=1 { x 2; }; }", ["x", "x"]),
            ("nodes\nnode \"a\"", ["nodes", "node"]),
        ] {
            let d = errors(text);
            assert_eq!(d.len(), 1, "{text}: {d:#?}");
            assert_eq!(d[0].code, Code::DuplicateKey, "{text}");
            let labelled: Vec<&str> = d[0].labels.iter().map(|l| slice(text, l.span)).collect();
            assert_eq!(labelled, twice, "{text}");
        }
    }

    #[test]
    fn unknown_names_are_lowered_as_written() {
        let text = "frobnicate\ncolour \"red\"\ntags \"a\" \"b\"\nextra-stuff x=1 { nested-key 2; }\nnode \"a\" { stop max-iteration=3; promt \"x\"; }";
        twin(
            text,
            r#"frobnicate = true
            colour = "red"
            tags = ["a", "b"]
            extra_stuff = { x = 1, nested_key = 2 }
            nodes = { a = { stop = { max_iteration = 3 }, promt = "x" } }"#,
        );
        let root = kdl(text);
        assert_eq!(key(&root, "extra_stuff").spelled, "extra-stuff");
        let stop = at(&root, "nodes.a.stop").as_table().expect("stop");
        assert_eq!(key(stop, "max_iteration").spelled, "max-iteration");
    }

    #[test]
    fn values_conductor_has_no_use_for() {
        let text = "name #null\nnode \"a\" max-items=#null\ndescription (t)\"x\"\n(t)version 1";
        let d = errors(text);
        let found: Vec<(Code, &str)> = d
            .iter()
            .map(|d| (d.code, slice(text, d.labels[0].span)))
            .collect();
        assert_eq!(
            found,
            [
                (Code::InvalidValue, "#null"),
                (Code::InvalidValue, "#null"),
                (Code::InvalidValue, "(t)\"x\""),
                (Code::InvalidValue, "(t)"),
            ]
        );
        // An integer beyond 64 bits is kept, for the key that reads it to
        // name the range it takes.
        let root = kdl("limits max-agents=99999999999999999999");
        assert_eq!(
            at(&root, "limits.max_agents").kind,
            ValueKind::HugeInteger("99999999999999999999".into())
        );
        assert_eq!(
            d[0].message,
            "conductor has no null values; leave the key out"
        );
        assert!(d[2].message.contains("type annotation"), "{}", d[2].message);
    }

    #[test]
    fn malformed_keyed_and_command_nodes() {
        let text =
            "node\nnode 1\nagent \"a\" \"b\"\nsuccess { command \"go\" \"test\"; }\nstop \"x\" y=1";
        let d = errors(text);
        let found: Vec<(Code, &str)> = d
            .iter()
            .map(|d| (d.code, slice(text, d.labels[0].span)))
            .collect();
        assert_eq!(
            found,
            [
                (Code::InvalidValue, "node"),
                (Code::WrongType, "1"),
                (Code::InvalidValue, "\"b\""),
                (Code::InvalidValue, "command \"go\" \"test\""),
                (Code::InvalidValue, "\"x\""),
            ]
        );
    }

    #[test]
    fn lowering_reports_every_problem() {
        let d = errors("name #null\nnode \"a\"\nnode \"a\"\nversion 1\nversion 2");
        let codes: Vec<Code> = d.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [Code::InvalidValue, Code::DuplicateNode, Code::DuplicateKey]
        );
    }

    #[test]
    fn syntax_errors_are_all_reported() {
        let text = "a 1.\nb 0x\nc \"x";
        let d = errors(text);
        assert!(d.len() >= 3, "{d:#?}");
        assert!(
            d.iter()
                .all(|d| d.code == Code::KdlSyntax && d.message.starts_with("invalid KDL: "))
        );
        let starts: Vec<u32> = d.iter().map(|d| d.labels[0].span.start).collect();
        assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    }

    #[test]
    fn a_bad_property_value_is_pointed_at_where_it_is() {
        let text = include_str!("../../../tests/fixtures/invalid/kdl_syntax.kdl");
        let d = errors(text);
        let labelled: Vec<&str> = d.iter().map(|d| slice(text, d.labels[0].span)).collect();
        assert_eq!(labelled, ["\"broken", "agent="]);
        let text = "version 1\nnode \"a\" max=1. x=2";
        assert_eq!(slice(text, errors(text)[0].labels[0].span), "max=1.");
    }

    #[test]
    fn nesting_too_deep_for_the_parser_is_refused() {
        let deep = |n: usize| format!("{}{}", "a {".repeat(n), "}".repeat(n));
        assert!(parse(FILE, &deep(super::MAX_DEPTH)).is_ok());
        let text = deep(1000);
        let d = errors(&text);
        assert_eq!((d.len(), d[0].code), (1, Code::KdlSyntax));
        assert_eq!(d[0].labels[0].span.offset(), 3 * super::MAX_DEPTH + 2);
    }

    fn check_never_panics(text: &str) {
        match parse(FILE, text) {
            Ok(t) => assert_eq!(t.span, Span::new(FILE, 0..text.len())),
            Err(d) => {
                assert!(!d.is_empty());
                for l in d.iter().flat_map(|d| &d.labels) {
                    assert!(
                        l.span.start <= l.span.end && l.span.end as usize <= text.len(),
                        "{l:?}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_lowers_without_panicking(text in "\\PC*") {
            check_never_panics(&text);
        }

        #[test]
        fn kdl_like_text_lowers_without_panicking(
            text in r#"(node|agent|params|success|command|for-each|item|stop|matrix|vars|prompt|default|type|"list"|"x"|[a-z-]{1,5}|[0-9.]{1,3}|#null|#true|\(t\)|=| |\n|\{|\}|;|é){0,40}"#
        ) {
            check_never_panics(&text);
        }
    }
}
