//! Owns an agent's final answer: which of output.md (written by the
//! agent), the answer in its stream and its stdout wins, the cap on the
//! text handed to templates (the full text always stays on disk), and
//! reading JSON out of an answer (docs/workflow-format.md, `output`).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::stream::StreamReport;
use crate::secrets::Redactor;

/// Text handed to templates is capped; the raw output stays on disk in full.
pub(crate) const TEMPLATE_TEXT_CAP: usize = 1 << 20;

/// The success conditions and JSON extraction judge the whole answer up to
/// this size (docs/workflow-format.md); a larger one is not judged at all
/// rather than judged by its beginning.
pub(crate) const JUDGED_TEXT_CAP: u64 = 64 << 20;

/// An answer too large to be judged whole.
#[derive(Debug, thiserror::Error)]
#[error(
    "the answer is {} MiB, more than the {} MiB the success conditions judge whole",
    .bytes >> 20,
    JUDGED_TEXT_CAP >> 20
)]
pub(crate) struct TooLarge {
    pub bytes: u64,
}

/// The whole answer: `capped` itself when it was not cut, else `output`
/// read again in full.
pub(crate) fn whole<'a>(
    capped: &'a str,
    output: &Path,
) -> Result<std::borrow::Cow<'a, str>, TooLarge> {
    if capped.len() <= TEMPLATE_TEXT_CAP {
        return Ok(std::borrow::Cow::Borrowed(capped));
    }
    let bytes = std::fs::metadata(output).map_or(0, |m| m.len());
    if bytes > JUDGED_TEXT_CAP {
        return Err(TooLarge { bytes });
    }
    let mut text = Vec::new();
    if let Ok(f) = File::open(output) {
        // Read no more than the cap, should the file grow meanwhile.
        if let Err(e) = f.take(JUDGED_TEXT_CAP).read_to_end(&mut text) {
            tracing::warn!("cannot read {}: {e}", output.display());
        }
    }
    Ok(std::borrow::Cow::Owned(
        String::from_utf8_lossy(&text).into_owned(),
    ))
}

/// Caps `text` at [`TEMPLATE_TEXT_CAP`] bytes (on a char boundary), saying so.
pub(crate) fn cap(mut text: String) -> String {
    if text.len() > TEMPLATE_TEXT_CAP {
        let mut end = TEMPLATE_TEXT_CAP;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[conductor: output cut at 1 MiB; the full text is in output.md]\n");
    }
    text
}

/// output.md written by the agent wins; else the stream's answer; else stdout.
/// output.md is made to exist either way, as the Go seed guarantees, and
/// holds no secret: one the agent wrote is redacted in place (stdout already
/// was, on its way). Stdout becomes output.md as a second name of the same
/// file where the file system allows: the run is over and nothing writes
/// either again, and a copy would cost every iteration a new file and its
/// bytes (docs/performance.md, issue 18).
pub(crate) fn final_answer(
    report: &StreamReport,
    output: &Path,
    stdout: &Path,
    redactor: &Redactor,
) -> String {
    if output.exists() {
        if let Err(e) = crate::secrets::redact_file(output, redactor) {
            tracing::warn!("cannot redact {}: {e}", output.display());
        }
    } else {
        let answer = report.answer.as_deref().map(|a| redactor.redact(a));
        let written = match &answer {
            Some(a) => std::fs::write(output, a.as_bytes()),
            None => std::fs::hard_link(stdout, output)
                .or_else(|_| std::fs::copy(stdout, output).map(|_| ())),
        };
        if let Err(e) = written {
            tracing::warn!("cannot write {}: {e}", output.display());
            return cap(answer.map(std::borrow::Cow::into_owned).unwrap_or_default());
        }
    }
    read_capped(output)
}

/// The first [`TEMPLATE_TEXT_CAP`] bytes of a file (and a marker past them).
pub(crate) fn read_capped(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(f) = File::open(path) {
        // A file that cannot be read whole is read as far as it can be.
        if let Err(e) = f.take(TEMPLATE_TEXT_CAP as u64 + 4).read_to_end(&mut bytes) {
            tracing::warn!("cannot read {}: {e}", path.display());
        }
    }
    cap(String::from_utf8_lossy(&bytes).into_owned())
}

/// The JSON in an answer: the whole text if it parses, else the last fenced
/// json block, else the last balanced `{...}` or `[...]`.
pub(crate) fn extract_json(text: &str) -> Option<serde_json::Value> {
    if let Ok(v) = serde_json::from_str(text.trim()) {
        return Some(v);
    }
    let mut fenced = None;
    let mut rest = text;
    while let Some(start) = rest.find("```json") {
        let body = &rest[start + 7..];
        let Some(end) = body.find("```") else { break };
        if let Ok(v) = serde_json::from_str(body[..end].trim()) {
            fenced = Some(v);
        }
        rest = &body[end + 3..];
    }
    if fenced.is_some() {
        return fenced;
    }
    // The last balanced value: try each closing bracket from the end, and
    // parse from each opening bracket before it.
    let bytes = text.as_bytes();
    // Bounded, so a huge answer full of brackets cannot take quadratic time.
    let ends = (0..bytes.len())
        .rev()
        .filter(|&i| matches!(bytes[i], b'}' | b']'));
    for end in ends.take(64) {
        let open = if bytes[end] == b'}' { b'{' } else { b'[' };
        for start in (0..end).rev().filter(|&i| bytes[i] == open).take(256) {
            if let Ok(v) = serde_json::from_str(&text[start..=end]) {
                return Some(v);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_found_whole_fenced_or_balanced() {
        assert_eq!(extract_json(" [1, 2] "), Some(serde_json::json!([1, 2])));
        assert_eq!(
            extract_json("text\n```json\n{\"a\": 1}\n```\nmore ```json\n{\"b\": 2}\n```"),
            Some(serde_json::json!({"b": 2}))
        );
        assert_eq!(
            extract_json("I found {\"tasks\": [\"x\"]} and that is all."),
            Some(serde_json::json!({"tasks": ["x"]}))
        );
        assert_eq!(extract_json("nothing here"), None);
    }

    #[test]
    fn cap_keeps_char_boundaries() {
        let text = "é".repeat(TEMPLATE_TEXT_CAP);
        let capped = cap(text);
        assert!(capped.ends_with("output.md]\n"));
        assert!(capped.len() < TEMPLATE_TEXT_CAP + 100);
    }

    #[test]
    fn output_md_wins_over_the_stream_and_is_made_to_exist() {
        let dir = tempfile::tempdir().unwrap();
        let (output, stdout) = (dir.path().join("output.md"), dir.path().join("out.txt"));
        std::fs::write(&stdout, "printed").unwrap();
        let streamed = StreamReport {
            answer: Some("streamed".into()),
            ..StreamReport::default()
        };
        assert_eq!(
            final_answer(&streamed, &output, &stdout, &Redactor::default()),
            "streamed"
        );
        std::fs::write(&output, "written by the agent").unwrap();
        assert_eq!(
            final_answer(&streamed, &output, &stdout, &Redactor::default()),
            "written by the agent"
        );
        std::fs::remove_file(&output).unwrap();
        assert_eq!(
            final_answer(
                &StreamReport::default(),
                &output,
                &stdout,
                &Redactor::default()
            ),
            "printed"
        );
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "printed");
    }
}
