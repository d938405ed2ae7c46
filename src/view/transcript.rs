//! An agent's stream read as a transcript (assistant text, tool calls and
//! their results folded), from any offset on: `conductor logs` prints it,
//! `conductor serve` streams it to the page.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::agents::transcript::Transcript;
use crate::store::layout::RunDir;

/// The transcript of the stream at `path` from `offset` on, whole lines
/// only unless `last` (then the rest, and what the transcript still
/// holds); and the offset after what was read.
pub(crate) fn from(path: &Path, offset: u64, t: &mut Transcript, last: bool) -> (String, u64) {
    from_at_most(path, offset, t, last, u64::MAX)
}

/// As [`from`], reading at most `max` bytes of the stream: a line longer
/// than that is taken in pieces rather than waited for whole.
pub(crate) fn from_at_most(
    path: &Path,
    offset: u64,
    t: &mut Transcript,
    last: bool,
    max: u64,
) -> (String, u64) {
    let Ok(mut f) = super::text::open(path) else {
        return (String::new(), offset);
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return (String::new(), offset);
    }
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    let full = buf.len() as u64 == max;
    let last = last && !full;
    let whole = match buf.iter().rposition(|&b| b == b'\n') {
        _ if last => buf.len(),
        Some(at) => at + 1,
        None if full => buf.len(),
        None => 0,
    };
    let text = String::from_utf8_lossy(buf.get(..whole).unwrap_or_default());
    let mut said: String = text.lines().map(|l| t.line(l)).collect();
    if last {
        said.push_str(&t.finish());
    }
    (said, offset + whole as u64)
}

/// How `run`'s stream reads, once its run-info says which agent made it:
/// a transcript for a CLI agent that streams, else none (read it as it is).
pub(crate) fn of(run: &RunDir) -> Option<Transcript> {
    let info = crate::store::RunInfo::read(&run.info()).ok()?;
    Transcript::new(crate::model::AgentKind::parse(&info.agent)?)
}
