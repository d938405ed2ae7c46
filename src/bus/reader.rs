//! Reading a bus without locks: a line state machine (`---`, header, `---`,
//! body) that skips what it cannot parse and resynchronises on the next
//! record, drops a torn last record, and reads only the end of the file for
//! a tail, so that showing the last records costs the same on any size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::record::{Message, unescape_body};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the bus {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no message `{id}` in {}", path.display())]
    SinceNotFound { id: String, path: PathBuf },
}

#[derive(Debug, serde::Deserialize)]
struct Header {
    msg_id: String,
    #[serde(default)]
    ts: String,
    #[serde(rename = "type")]
    kind: String,
    project_id: String,
    #[serde(default)]
    task_id: String,
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    issue_id: Option<String>,
    #[serde(default)]
    parents: Vec<serde_json::Value>,
    #[serde(default)]
    links: Vec<serde_json::Value>,
    #[serde(default)]
    meta: BTreeMap<String, serde_json::Value>,
    /// The body's length in bytes, as written (conductor's records; the Go
    /// seed's have none).
    #[serde(default)]
    body_bytes: Option<usize>,
}

/// Decodes a header: our own flat headers by a fast path, anything else
/// (nesting, other quoting, the Go seed's indentation) by the YAML parser.
fn decode_header(text: &str) -> Result<Header, ()> {
    if let Some(h) = flat_header(text) {
        return Ok(h);
    }
    serde_saphyr::from_str::<Header>(text).map_err(|_| ())
}

/// A scalar as the writer emits it: plain (when that cannot be misread) or
/// JSON-quoted; `None` for anything YAML might read otherwise.
fn flat_scalar(raw: &str) -> Option<String> {
    if let Some(inner) = raw.strip_prefix('"') {
        inner.strip_suffix('"')?;
        return serde_json::from_str::<String>(raw).ok();
    }
    let safe = raw
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b.is_ascii_digit())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./@+:-".contains(&b));
    // Words YAML reads as booleans, nulls or numbers go to the parser.
    if !safe
        || raw.parse::<f64>().is_ok()
        || matches!(
            raw.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null"
        )
    {
        return None;
    }
    Some(raw.to_string())
}

/// A header of `key: value` lines, and a flat `meta:` block of `    key:
/// value` lines, with scalars the writer emits; `None` for anything else,
/// so that YAML decides.
fn flat_header(text: &str) -> Option<Header> {
    // The bits of msg_id, type and project_id: the keys a header must have.
    const REQUIRED: u8 = 0b1101;
    let mut h = Header {
        msg_id: String::new(),
        ts: String::new(),
        kind: String::new(),
        project_id: String::new(),
        task_id: String::new(),
        run_id: String::new(),
        issue_id: None,
        parents: Vec::new(),
        links: Vec::new(),
        meta: BTreeMap::new(),
        body_bytes: None,
    };
    let mut seen = 0u8;
    let mut in_meta = false;
    for line in text.lines() {
        if line == "meta:" && h.meta.is_empty() && !in_meta {
            in_meta = true;
            continue;
        }
        if in_meta && let Some(entry) = line.strip_prefix("    ") {
            let (key, raw) = entry.split_once(": ")?;
            if key.starts_with(' ') {
                return None;
            }
            let (key, value) = (flat_scalar(key)?, flat_scalar(raw)?);
            h.meta.insert(key, serde_json::Value::String(value));
            continue;
        }
        in_meta = false;
        let (key, raw) = line.split_once(": ")?;
        if key == "body_bytes" {
            if h.body_bytes.is_some() {
                return None;
            }
            h.body_bytes = Some(raw.parse().ok()?);
            continue;
        }
        let value = flat_scalar(raw)?;
        let (slot, bit) = match key {
            "msg_id" => (&mut h.msg_id, 1),
            "ts" => (&mut h.ts, 2),
            "type" => (&mut h.kind, 4),
            "project_id" => (&mut h.project_id, 8),
            "task_id" => (&mut h.task_id, 16),
            "run_id" => (&mut h.run_id, 32),
            "issue_id" => {
                h.issue_id = Some(value);
                continue;
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        *slot = value;
    }
    (seen & REQUIRED == REQUIRED).then_some(h)
}

fn is_fence(line: &str) -> bool {
    line.trim_end_matches(['\n', '\r']) == "---"
}

/// Parses every complete record in `text`. Returns them and the offset just
/// past the last complete one, where reading can go on when more is written.
pub(crate) fn parse(text: &str) -> (Vec<Message>, usize) {
    enum State {
        Seek,
        Header(usize),
        Body(Box<Header>, usize),
    }
    let mut out = Vec::new();
    let mut state = State::Seek;
    let mut consumed = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        if !is_fence(line) {
            continue;
        }
        state = match state {
            State::Seek => State::Header(pos),
            // A blank line before this fence is the one between records:
            // the header before it was cut short, and this fence opens the
            // next record rather than closing that one.
            State::Header(from) if text[from..start].ends_with("\n\n") => State::Header(pos),
            State::Header(from) => match decode_header(&text[from..start]) {
                Ok(h) => State::Body(Box::new(h), pos),
                // Not a header (a torn record, or we started mid-record):
                // this fence may open the next one.
                Err(()) => State::Header(pos),
            },
            State::Body(h, from) => {
                // The blank line before this fence separates the records.
                let body = &text[from..start];
                // A body cut short by a writer that died is dropped, not
                // shown as if whole; the fence that ended it opens the next.
                if whole(&h, body) {
                    let body = match h.body_bytes {
                        // Exactly the body and the newline after it.
                        Some(n) => &body[..=n],
                        None => body.strip_suffix('\n').unwrap_or(body),
                    };
                    out.push(message(h, body));
                }
                consumed = start;
                State::Header(pos)
            }
        };
    }
    // The last record counts only when it is whole: a writer that died in
    // the middle of its one write leaves no final newline.
    if let State::Body(h, from) = state {
        let region = &text[from..];
        if let Some(n) = h.body_bytes {
            // Its body and the newline after it, then perhaps the start of
            // the next record (its blank line and part of its fence).
            let after = region.get(n..).unwrap_or_default();
            if let Some(next) = after.strip_prefix('\n')
                && "\n---".starts_with(next)
            {
                out.push(message(h, &region[..=n]));
                consumed = from + n + 1;
            }
        } else if text.ends_with('\n') && !region.is_empty() {
            out.push(message(h, region));
            consumed = text.len();
        } else {
            // A partial `---` after a blank line is the torn start of the
            // next record: the one before it was whole.
            let cut = text.rfind('\n').map_or(0, |i| i + 1).max(from);
            let partial = &text[cut..];
            let before = &text[from..cut];
            if "---".starts_with(partial) && before.ends_with("\n\n") {
                out.push(message(h, &before[..before.len() - 1]));
                consumed = cut - 1;
            }
        }
    }
    (out, consumed)
}

/// Whether `region` (from the fence after the header to the fence of the
/// next record) holds the whole body its header announces: the body, the
/// newline the writer adds, and the blank line between records. A body
/// one byte short, mended by the next writer's newline, has one newline
/// too few.
fn whole(h: &Header, region: &str) -> bool {
    let Some(n) = h.body_bytes else {
        return true;
    };
    region.as_bytes().get(n..) == Some(b"\n\n")
}

fn message(h: Box<Header>, body: &str) -> Message {
    let h = *h;
    let body = body.strip_suffix('\n').unwrap_or(body);
    Message {
        msg_id: h.msg_id,
        ts: h.ts,
        kind: h.kind,
        project_id: h.project_id,
        task_id: h.task_id,
        run_id: h.run_id,
        issue_id: h.issue_id,
        parents: h.parents,
        links: h.links,
        meta: h
            .meta
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        body: unescape_body(body),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bytes read from a bus as text: invalid UTF-8 is replaced, and offsets
/// in the text are turned back into offsets in the file.
#[derive(Debug, Default)]
struct Chunk {
    text: String,
    /// The bytes read, kept only when some were replaced (then the text and
    /// the file no longer line up).
    raw: Option<Vec<u8>>,
}

impl Chunk {
    /// How many bytes of the file byte `at` of the text is from the start
    /// of the read; `at` is a line start, never inside a replacement.
    fn file_offset(&self, at: usize) -> u64 {
        let Some(raw) = &self.raw else {
            return at as u64;
        };
        let (mut text, mut file) = (0, 0);
        for chunk in raw.utf8_chunks() {
            let valid = chunk.valid().len();
            if at <= text + valid {
                return (file + at - text) as u64;
            }
            text += valid;
            file += valid;
            if !chunk.invalid().is_empty() {
                text += char::REPLACEMENT_CHARACTER.len_utf8();
                file += chunk.invalid().len();
            }
        }
        file as u64
    }
}

/// Reads the bytes from `offset` to the end; a missing file is empty.
fn read_range(path: &Path, offset: u64) -> Result<Chunk, ReadError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Chunk::default()),
        Err(e) => return Err(io(path)(e)),
    };
    file.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(path))?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => Chunk { text, raw: None },
        Err(e) => {
            let raw = e.into_bytes();
            Chunk {
                text: String::from_utf8_lossy(&raw).into_owned(),
                raw: Some(raw),
            }
        }
    })
}

/// Every message; a missing bus has none.
pub fn read_all(path: &Path) -> Result<Vec<Message>, ReadError> {
    Ok(parse(&read_range(path, 0)?.text).0)
}

/// Complete messages from byte `offset` on, and the offset to continue from.
pub fn read_from(path: &Path, offset: u64) -> Result<(Vec<Message>, u64), ReadError> {
    let read = read_range(path, offset)?;
    let (messages, consumed) = parse(&read.text);
    Ok((messages, offset + read.file_offset(consumed)))
}

/// The messages after the one with id `since`, in file order (a cursor is a
/// position, not a comparison of ids).
pub fn read_since(path: &Path, since: &str) -> Result<Vec<Message>, ReadError> {
    let all = read_all(path)?;
    match all.iter().position(|m| m.msg_id == since) {
        Some(i) => Ok(all[i + 1..].to_vec()),
        None => Err(ReadError::SinceNotFound {
            id: since.to_string(),
            path: path.to_path_buf(),
        }),
    }
}

/// The last `n` messages, reading a window from the end of the file that
/// doubles until it holds `n` records or the whole file.
pub fn tail(path: &Path, n: usize) -> Result<Vec<Message>, ReadError> {
    tail_with_offset(path, n).map(|(messages, _)| messages)
}

/// As [`tail`], with the offset just past the last complete record, where a
/// follower goes on reading.
pub fn tail_with_offset(path: &Path, n: usize) -> Result<(Vec<Message>, u64), ReadError> {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io(path)(e)),
    };
    let mut window = (n as u64 * 512).max(64 * 1024);
    loop {
        let start = size.saturating_sub(window);
        let read = read_range(path, start)?;
        let text = &read.text;
        // Start at a record boundary: a fence line whose next line opens a header.
        let from = if start == 0 {
            0
        } else {
            record_start(text).unwrap_or(text.len())
        };
        let (mut messages, consumed) = parse(&text[from..]);
        if messages.len() >= n || start == 0 {
            let keep = messages.len().saturating_sub(n);
            messages.drain(..keep);
            return Ok((messages, start + read.file_offset(from + consumed)));
        }
        window *= 2;
    }
}

/// The offset of the first `---` line that is followed by a `msg_id:` line.
fn record_start(text: &str) -> Option<usize> {
    let mut pos = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    // The first line may be cut in the middle.
    if let Some(first) = lines.next() {
        pos += first.len();
    }
    while let Some(line) = lines.next() {
        if is_fence(line) && lines.peek().is_some_and(|next| next.starts_with("msg_id:")) {
            return Some(pos);
        }
        pos += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::NewMessage;

    fn record(id: &str, body: &str) -> String {
        NewMessage {
            kind: "FACT".into(),
            project_id: "p".into(),
            body: body.into(),
            ..NewMessage::default()
        }
        .render(id, "2026-01-01T00:00:00Z")
    }

    #[test]
    fn bodies_round_trip_between_records() {
        let text = format!(
            "{}\n{}\n{}\n{}",
            record("a", "one"),
            record("b", "two\n---\nthree"),
            record("c", ""),
            record("d", "trailing\n\n")
        );
        let (msgs, consumed) = parse(&text);
        let bodies: Vec<&str> = msgs.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["one", "two\n---\nthree", "", "trailing\n\n"]);
        assert_eq!(consumed, text.len());
    }

    #[test]
    fn a_torn_last_record_is_skipped() {
        let whole = format!("{}\n{}", record("a", "one"), record("b", "two"));
        for cut in (record("a", "one").len() + 1)..whole.len() {
            let (msgs, consumed) = parse(&whole[..cut]);
            assert_eq!(msgs.len(), 1, "cut at {cut}: {:?}", &whole[..cut]);
            assert_eq!(msgs[0].msg_id, "a");
            assert!(consumed <= cut);
        }
    }

    #[test]
    fn a_record_torn_inside_its_body_is_dropped_and_the_next_one_kept() {
        let torn = record("a", "line one\nline two\nline three");
        // Cut anywhere in the body, at a line's end too (the writer died
        // mid-write); the next writer starts on a new line, as ours does.
        let body_at = torn.find("line one").unwrap();
        for cut in body_at..torn.len() - 1 {
            let text = format!("{}\n{}", &torn[..cut], record("b", "next"));
            let (msgs, consumed) = parse(&text);
            let ids: Vec<&str> = msgs.iter().map(|m| m.msg_id.as_str()).collect();
            assert_eq!(ids, ["b"], "cut at {cut}: {text:?}");
            assert_eq!(msgs[0].body, "next");
            assert_eq!(consumed, text.len());
        }
    }

    #[test]
    fn a_record_torn_anywhere_never_hides_the_next_one() {
        // A writer dies after any byte of record a; then b is appended by
        // the writer, which starts it on a line of its own.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.md");
        let torn = record("a", "line one\nline two");
        for cut in 1..torn.len() - 1 {
            std::fs::write(&path, &torn.as_bytes()[..cut]).unwrap();
            let mut w = crate::bus::BusWriter::open(&path).unwrap();
            let id = w
                .append(&NewMessage {
                    kind: "FACT".into(),
                    project_id: "p".into(),
                    body: "next".into(),
                    ..NewMessage::default()
                })
                .unwrap();
            let msgs = read_all(&path).unwrap();
            let ids: Vec<&str> = msgs.iter().map(|m| m.msg_id.as_str()).collect();
            assert_eq!(
                ids,
                [id.as_str()],
                "cut at {cut}: {:?}",
                std::fs::read_to_string(&path)
            );
            assert_eq!(msgs[0].body, "next");
        }
    }

    #[test]
    fn offsets_count_the_bytes_of_invalid_utf8_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.md");
        // Written by another writer: no `body_bytes` to check it by.
        let mut bytes = record("a", "bad")
            .replace("body_bytes: 3\n", "")
            .into_bytes();
        bytes.pop();
        bytes.extend_from_slice(b"\xff\xfe\n");
        let first = bytes.len() as u64;
        std::fs::write(&path, &bytes).unwrap();
        let (msgs, offset) = read_from(&path, 0).unwrap();
        assert_eq!(
            (msgs[0].body.as_str(), offset),
            ("bad\u{fffd}\u{fffd}", first)
        );
        assert_eq!(tail_with_offset(&path, 1).unwrap().1, first);
        bytes.extend_from_slice(format!("\n{}", record("b", "two")).as_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let (msgs, offset) = read_from(&path, first).unwrap();
        assert_eq!((msgs[0].body.as_str(), offset), ("two", bytes.len() as u64));
    }

    #[test]
    fn reading_from_the_middle_resynchronises() {
        let text = format!("{}\n{}", record("a", "one"), record("b", "two"));
        let from = record_start(&text[5..]).unwrap() + 5;
        let (msgs, _) = parse(&text[from..]);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].msg_id, "b");
    }

    #[test]
    fn the_fast_path_agrees_with_yaml() {
        let headers = [
            "msg_id: MSG-1\nts: 2026-03-01T10:15:02.123Z\ntype: FACT\nproject_id: p\ntask_id: \"\"\nrun_id: \"0001-x\"",
            "msg_id: MSG-2\ntype: \"a: b\"\nproject_id: p\ntask_id: t-1\nrun_id: r",
            "msg_id: MSG-3\ntype: NODE_DONE\nproject_id: p\nmeta:\n    apply_id: apply-1\n    exit_code: \"0\"\n    \"odd key\": \"x: y\"\nrun_id: r",
            "msg_id: MSG-3\ntype: FACT\nproject_id: p\nissue_id: MSG-3",
        ];
        for h in headers {
            let fast = flat_header(h).expect("flat");
            let yaml: Header = serde_saphyr::from_str(h).unwrap();
            assert_eq!(
                (
                    fast.msg_id,
                    fast.ts,
                    fast.kind,
                    fast.project_id,
                    fast.task_id,
                    fast.run_id,
                    fast.issue_id,
                    fast.meta
                ),
                (
                    yaml.msg_id,
                    yaml.ts,
                    yaml.kind,
                    yaml.project_id,
                    yaml.task_id,
                    yaml.run_id,
                    yaml.issue_id,
                    yaml.meta
                )
            );
        }
        for not_flat in [
            "msg_id: 12\ntype: T\nproject_id: p",
            "msg_id: a\ntype: yes\nproject_id: p",
            "msg_id: a\nmeta:\n    k:\n        nested: v\ntype: T\nproject_id: p",
            "msg_id: a\nmeta:\n    k: 3\ntype: T\nproject_id: p",
        ] {
            assert!(flat_header(not_flat).is_none(), "{not_flat}");
        }
    }

    #[test]
    fn go_style_headers_are_read() {
        let text = "---\nmsg_id: MSG-1\nts: 2026-03-01T10:15:02.123456789Z\ntype: DECISION\nproject_id: payments\ntask_id: task-1\nrun_id: \"\"\nparents:\n    - msg_id: MSG-0\n      kind: depends_on\nmeta:\n    stage: review\n    n: 3\n---\nChose optimistic locking.\n";
        let (msgs, _) = parse(text);
        assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        assert_eq!(m.ts, "2026-03-01T10:15:02.123456789Z");
        assert_eq!(m.meta["stage"], "review");
        assert_eq!(m.meta["n"], "3");
        assert_eq!(m.parents[0]["kind"], "depends_on");
        assert_eq!(m.body, "Chose optimistic locking.");
    }
}
