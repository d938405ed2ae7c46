//! Owns the four fuzz entry points, shared by the cargo-fuzz targets in
//! `fuzz/` and the corpus replay tests (`corpus`, below): the TOML and
//! KDL front ends (text to diagnostics and plan, as `conductor validate`
//! runs them), the static template checks on a prompt, and the bus reader.
//! Each takes arbitrary bytes and panics only when an invariant breaks, so a
//! panic is a finding. See docs/fuzzing.md.

use std::fmt::Write as _;
use std::path::Path;

use crate::bus::{self, Message, NewMessage};
use crate::compile::{Program, compile_text};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::ForEach;
use crate::plan::{self, PlanOptions};
use crate::prompt::is_templated;
use crate::source::Sources;

/// The TOML workflow front end: `data` as the text of a `.toml` workflow.
pub fn toml_front_end(data: &[u8]) {
    front_end(data, "fuzz.toml");
}

/// The KDL workflow front end: `data` as the text of a `.kdl` workflow.
pub fn kdl_front_end(data: &[u8]) {
    front_end(data, "fuzz.kdl");
}

/// Compiles and plans `data` as a workflow beside the library example (so
/// that its templates and sub-workflow can be named) and checks what a user
/// would be shown.
fn front_end(data: &[u8], name: &str) {
    // A file that is not UTF-8 is refused before any parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entry = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/library")
        .join(name);
    check(&entry, text.to_string());
}

/// Compiles and plans the entry file; every diagnostic must point into the
/// text it names and render. Returns the diagnostics and the sources.
fn check(entry: &Path, text: String) -> (Vec<Diagnostic>, Sources) {
    let mut c = compile_text(entry, text, &[]);
    let mut diags = std::mem::take(&mut c.diagnostics).into_vec();
    let failed = diags.iter().any(Diagnostic::is_error);
    assert_eq!(
        c.program.is_none(),
        failed,
        "a program exactly when there is no error"
    );
    if let Some(program) = c.program.as_ref().filter(|p| !walks_outside(p)) {
        let options = PlanOptions {
            show_prompts: false,
            runs_root: Some(crate::store::layout::runs_root(
                None,
                program.declared_root(),
            )),
        };
        let (_plan, more) = plan::plan(program, &mut c.sources, options);
        diags.extend(more.into_vec());
    }
    for (i, d) in diags.iter().enumerate() {
        check_diagnostic(d, &c.sources);
        // miette's rendering is most of the time of a run: two suffice.
        if i < 2 {
            let shown = crate::cli::render::to_text(d, &c.sources);
            assert!(shown.contains(d.code.as_str()), "rendered without its code");
        }
    }
    (diags, c.sources)
}

/// Whether planning would walk folders outside the example's for a glob
/// fan-out (an absolute or `..` workdir): valid, but slow for a fuzzer.
fn walks_outside(program: &Program) -> bool {
    program.nodes.iter().any(|n| {
        matches!(n.for_each, Some(ForEach::Glob { .. }))
            && n.workdir.as_ref().is_some_and(|(w, _)| {
                w.value.starts_with('/') || w.value.contains("..") || is_templated(&w.value)
            })
    })
}

/// An error has a span; every span lies within its file's text, on
/// character boundaries; its `--json` form has a line and column.
fn check_diagnostic(d: &Diagnostic, sources: &Sources) {
    assert!(
        d.code.as_str().starts_with("conductor::"),
        "diagnostic without a code: {d:?}"
    );
    assert!(
        !d.is_error() || !d.labels.is_empty(),
        "an error without a span: {d:?}"
    );
    for label in &d.labels {
        let text = &sources.get(label.span.file).text;
        let (start, end) = (label.span.start as usize, label.span.end as usize);
        assert!(
            start <= end && end <= text.len(),
            "span {start}..{end} outside a text of {} bytes: {d:?}",
            text.len()
        );
        assert!(
            text.is_char_boundary(start) && text.is_char_boundary(end),
            "span {start}..{end} cuts a character: {d:?}"
        );
    }
    let json = crate::cli::render::to_json(d, sources);
    assert_eq!(
        json.line.is_some(),
        !d.labels.is_empty(),
        "--json without a line"
    );
}

/// The codes a prompt template's problems are reported with.
const TEMPLATE_CODES: &[Code] = &[
    Code::TemplateSyntax,
    Code::UndefinedVariable,
    Code::TemplateRender,
    Code::TemplateNotFound,
];

/// The static template checks and the first render, on `data` as a prompt:
/// once inline in a workflow file and once as a template file. Bytes before
/// a NUL, if any, name the `vars` the template file is given.
pub fn template_check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (names, template) = match text.split_once('\0') {
        Some((names, template)) => (names, template),
        None => ("", text.as_ref()),
    };
    let mut vars: Vec<&str> = names
        .split([',', ' ', '\n'])
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .collect();
    vars.sort_unstable();
    vars.dedup();
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let entry = dir.path().join("fuzz.toml");

    // Inline: errors point into the prompt's string in the workflow file.
    let literal = toml_string(template);
    let workflow = prompt_workflow(&literal);
    let at = workflow.len() - literal.len() - 1..workflow.len() - 1;
    let (diags, sources) = check(&entry, workflow);
    for d in diags.iter().filter(|d| d.is_error()) {
        assert!(
            TEMPLATE_CODES.contains(&d.code),
            "not a template error: {d:?}"
        );
        let in_prompt = d.labels.iter().any(|l| {
            sources.get(l.span.file).path != entry
                || (at.start <= l.span.offset() && l.span.end as usize <= at.end)
        });
        assert!(in_prompt, "a template error outside the prompt: {d:?}");
    }

    // A template file: errors point into it (or at where it is named).
    let file = dir.path().join("prompt.md");
    if std::fs::write(&file, template.as_bytes()).is_err() {
        return;
    }
    let mut table = String::new();
    for v in &vars {
        let _ = write!(table, "{v} = \"{v}\", ");
    }
    let by_name = format!("{{ template = \"prompt.md\", vars = {{ {table}}} }}");
    let workflow = prompt_workflow(&by_name);
    let (diags, _) = check(&entry, workflow);
    for d in diags.iter().filter(|d| d.is_error()) {
        assert!(
            TEMPLATE_CODES.contains(&d.code),
            "not a template error: {d:?}"
        );
    }
}

/// A valid workflow whose node `n` (fanned out, needing `first`) has `prompt`
/// as the last value of the text.
fn prompt_workflow(prompt: &str) -> String {
    format!(
        "version = 1\nname = \"fuzz\"\n\n[agents.a]\nkind = \"command\"\ncommand = [\"cat\"]\n\n\
         [nodes.first]\nagent = \"a\"\nprompt = \"first\"\n\n\
         [nodes.n]\nagent = \"a\"\nneeds = [\"first\"]\nfor_each = [\"x\", \"y\"]\nprompt = {prompt}\n"
    )
}

/// `s` as a TOML string: a multi-line literal when it can be one (so that
/// errors map to the very characters), else a basic string with escapes.
fn toml_string(s: &str) -> String {
    let literal_ok = !s.contains("'''")
        && !s.ends_with('\'')
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control());
    if literal_ok {
        return format!("'''\n{s}'''");
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The time every re-rendered record is stamped with.
const TS: &str = "2026-01-01T00:00:00Z";

/// The bus reader on `data` as the bytes of a bus file: what it parses is
/// stable under cutting at the offset it returns and under writing it back
/// with the writer's format, and the file functions agree with it.
pub fn bus_reader(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (messages, consumed) = bus::parse(&text);
    assert!(
        consumed <= text.len() && text.is_char_boundary(consumed),
        "consumed {consumed} of {} bytes, or inside a character",
        text.len()
    );
    // A follower that saw the file end with the last complete record (the
    // blank line before the next `---` is the next append's), then read on
    // from where it stopped, reads the same. Not always all of them from the
    // first part: a record closed by the next one's `---` rather than by a
    // newline is complete only once that `---` is there.
    let cut = if text[consumed..].starts_with("---") && text[..consumed].ends_with("\n\n") {
        consumed - 1
    } else {
        consumed
    };
    let (first, stop) = bus::parse(&text[..cut]);
    let (second, _) = bus::parse(&text[stop..]);
    assert!(
        stop <= cut
            && first.len() + second.len() == messages.len()
            && first.iter().chain(&second).eq(&messages),
        "read in two parts at {cut}, then {stop}: {first:?} and {second:?}"
    );
    assert!(
        bus::parse(&text[consumed..]).0.is_empty(),
        "a record after the offset to go on from"
    );

    // Written back by the writer, every message reads back the same.
    let rendered: Vec<String> = messages
        .iter()
        .map(|m| as_new(m).render(&m.msg_id, TS))
        .collect();
    let again = rendered.join("\n");
    let (back, end) = bus::parse(&again);
    assert_eq!(end, again.len(), "a re-written bus is not read to its end");
    assert_eq!(back.len(), messages.len(), "re-written: {again:?}");
    for (m, b) in messages.iter().zip(&back) {
        let key = |m: &Message| {
            (
                m.msg_id.clone(),
                m.kind.clone(),
                m.project_id.clone(),
                m.task_id.clone(),
                m.run_id.clone(),
                m.meta.clone(),
                m.body.clone(),
                parent_ids(m),
            )
        };
        assert_eq!(
            key(m),
            key(b),
            "a message changed when re-written: {again:?}"
        );
        assert_eq!(b.ts, TS);
    }

    // From any offset, reading resynchronises without panicking.
    let mid = usize::from(data.first().copied().unwrap_or(0)) * text.len() / 256;
    let mid = (0..=mid)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let (_, rest) = bus::parse(&text[mid..]);
    assert!(mid + rest <= text.len());

    bus_files(data, &messages);
}

/// The parents' message ids, the only part of a parent the writer writes.
fn parent_ids(m: &Message) -> Vec<String> {
    m.parents
        .iter()
        .filter_map(|p| p.get("msg_id").and_then(|v| v.as_str()).map(str::to_string))
        .collect()
}

/// The message to append that writes `m` again.
fn as_new(m: &Message) -> NewMessage {
    NewMessage {
        kind: m.kind.clone(),
        project_id: m.project_id.clone(),
        task_id: m.task_id.clone(),
        run_id: m.run_id.clone(),
        parents: parent_ids(m),
        meta: m.meta.clone(),
        body: m.body.clone(),
    }
}

/// `read_all`, `read_from` and `tail` on the bytes as a file, and on the
/// bytes after more than a tail window of whole records, so that the tail
/// starts in the middle of the file.
fn bus_files(data: &[u8], messages: &[Message]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("bus.md");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let len = data.len() as u64;
    let all = read(bus::read_all(&path));
    assert_eq!(all, messages, "read_all differs from parse");
    let (from0, offset) = read(bus::read_from(&path, 0));
    assert_eq!(from0, messages);
    assert!(
        offset <= len,
        "read_from offset {offset} past the end ({len})"
    );
    let (more, next) = read(bus::read_from(&path, offset));
    assert!(
        more.is_empty() && next == offset,
        "reading on found more: {more:?}"
    );
    let mid = u64::from(data.last().copied().unwrap_or(0)) * len / 256;
    let (_, after) = read(bus::read_from(&path, mid));
    assert!(
        mid <= after && after <= len,
        "read_from({mid}) went to {after} of {len}"
    );
    check_tail(&path, &all, offset);

    if data.len() <= 16 * 1024 {
        let padded = dir.path().join("padded.md");
        let mut bytes = filler();
        bytes.extend_from_slice(data);
        if std::fs::write(&padded, &bytes).is_err() {
            return;
        }
        let (all, offset) = read(bus::read_from(&padded, 0));
        check_tail(&padded, &all, offset);
    }
}

/// The tail is the end of everything, and goes on where `read_from` does.
fn check_tail(path: &Path, all: &[Message], offset: u64) {
    let (last, at) = read(bus::tail_with_offset(path, 3));
    assert_eq!(
        last,
        all[all.len().saturating_sub(3)..],
        "tail(3) is not the last 3 of read_all"
    );
    assert_eq!(
        at, offset,
        "tail and read_from go on from different offsets"
    );
}

/// More than a tail window (64 KiB) of whole records: one long record, so
/// that reading it costs little, then three short ones for the tail to find.
fn filler() -> Vec<u8> {
    static FILLER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    FILLER
        .get_or_init(|| {
            let record = |n: usize, body: String| {
                NewMessage {
                    kind: "FACT".into(),
                    project_id: "fuzz".into(),
                    body,
                    ..NewMessage::default()
                }
                .render(&format!("MSG-{n}"), TS)
            };
            let line = format!("{}\n", "filler ".repeat(146));
            let mut out = record(0, line.repeat(66));
            for n in 1..=3 {
                out.push('\n');
                out.push_str(&record(n, format!("short {n}")));
            }
            out.push('\n');
            out.into_bytes()
        })
        .clone()
}

fn read<T>(r: Result<T, bus::ReadError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("reading a readable file failed: {e}"),
    }
}

/// Replays the committed fuzz corpora (fuzz/corpus/<target>/) and crash
/// reproducers (fuzz/regressions/<target>/) through the same entry points
/// the cargo-fuzz targets call, so that `cargo test` checks every input
/// the fuzzers kept.
#[cfg(test)]
mod corpus {
    use std::path::Path;

    /// Runs every file of `fuzz/corpus/<target>/` (which must hold some) and of
    /// `fuzz/regressions/<target>/` (the crash reproducers, if any) through `run`.
    fn replay(target: &str, run: fn(&[u8])) {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let corpus = fuzz.join("corpus").join(target);
        let mut files = inputs(&corpus);
        assert!(!files.is_empty(), "{} holds no inputs", corpus.display());
        let regressions = fuzz.join("regressions").join(target);
        if regressions.exists() {
            files.extend(inputs(&regressions));
        }
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let caught = std::panic::catch_unwind(|| run(&data));
            assert!(caught.is_ok(), "{} fails {target}", file.display());
        }
    }

    fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn toml_front_end() {
        replay("toml_front_end", super::toml_front_end);
    }

    #[test]
    fn kdl_front_end() {
        replay("kdl_front_end", super::kdl_front_end);
    }

    #[test]
    fn template_check() {
        replay("template_check", super::template_check);
    }

    #[test]
    fn bus_reader() {
        replay("bus_reader", super::bus_reader);
    }
}
