//! Owns server-sent-event framing as both HTTP wire formats use it: bytes
//! arrive in arbitrary chunks, lines end in `\n` or `\r\n`, `event:` and
//! `data:` lines gather until a blank line ends the event. Comments
//! (`:` keep-alives) and other fields are skipped. A line longer than
//! [`MAX_LINE`] is an error rather than a memory blow-up.

use crate::agents::stream::MAX_LINE;

/// One complete event: its `event:` name (empty when none) and its data
/// lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Event {
    pub name: String,
    pub data: String,
}

/// A line of the stream was longer than the limit.
#[derive(Debug, thiserror::Error)]
#[error("a line of the event stream is longer than 16 MiB")]
pub(super) struct LineTooLong;

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub(super) struct Parser {
    /// Bytes of a line not ended yet.
    partial: Vec<u8>,
    name: String,
    data: Vec<String>,
}

impl Parser {
    /// Takes the next chunk of bytes; returns the events it completed.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, LineTooLong> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..at]);
            rest = &rest[at + 1..];
            let line = std::mem::take(&mut self.partial);
            if line.len() > MAX_LINE {
                return Err(LineTooLong);
            }
            let line = String::from_utf8_lossy(&line);
            if let Some(event) = self.line(line.strip_suffix('\r').unwrap_or(&line)) {
                events.push(event);
            }
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_LINE {
            return Err(LineTooLong);
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.name.clear();
                return None;
            }
            return Some(Event {
                name: std::mem::take(&mut self.name),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        // The spec strips exactly one space after the colon.
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.name),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings_come_whole() {
        let mut p = Parser::default();
        let mut all = Vec::new();
        for chunk in [
            &b": keep-alive\n\nevent: mess"[..],
            b"age_start\r\ndata: {\"a\":",
            b"1}\r\n\r\ndata: one\ndata: two\n\n",
            b"data: [DONE]\n",
        ] {
            all.extend(p.feed(chunk).unwrap());
        }
        assert_eq!(
            all,
            [
                Event {
                    name: "message_start".into(),
                    data: "{\"a\":1}".into()
                },
                Event {
                    name: String::new(),
                    data: "one\ntwo".into()
                },
            ]
        );
        // The last event is only complete at its blank line.
        assert_eq!(p.feed(b"\n").unwrap()[0].data, "[DONE]");
    }
}
