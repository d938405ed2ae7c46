//! Owns making text that agents (or their items, file names and errors)
//! wrote safe to print on a terminal (docs/security.md, "Values are
//! data"): control characters other than newline and tab, the C0 and C1
//! sets and DEL, are shown as `\xNN` escapes, so no escape sequence from an
//! agent can move the cursor, retitle the window, write the clipboard or
//! hide what was printed before it.

use std::borrow::Cow;
use std::fmt::Write as _;

fn unsafe_char(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// `text` with its control characters escaped.
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Escapes control characters in a stream of bytes read in chunks (a
/// file being followed): a C1 character's two UTF-8 bytes may come in two
/// chunks.
#[derive(Debug, Default)]
pub(crate) struct PrintableBytes {
    /// The chunk before ended with the first byte of a C1 character.
    pending: bool,
}

impl PrintableBytes {
    /// Appends `chunk` to `out`, escaped.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        for &b in chunk {
            if std::mem::take(&mut self.pending) {
                if (0x80..=0x9f).contains(&b) {
                    out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                    continue;
                }
                out.push(0xc2);
            }
            match b {
                b'\n' | b'\t' => out.push(b),
                0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                0xc2 => self.pending = true,
                _ => out.push(b),
            }
        }
    }

    /// The end of the stream: a byte held back is written as it was.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending) {
            out.push(0xc2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_shown_not_played() {
        let hostile = "ok\x1b]0;pwned\x07 \x1b[2J\r\u{9b}31m\tdone\n";
        assert_eq!(
            printable(hostile),
            "ok\\x1b]0;pwned\\x07 \\x1b[2J\\x0d\\x9b31m\tdone\n"
        );
        assert!(matches!(printable("plain é ✓\n"), Cow::Borrowed(_)));
        for size in 1..=hostile.len() {
            let mut p = PrintableBytes::default();
            let mut out = Vec::new();
            for chunk in hostile.as_bytes().chunks(size) {
                p.push(chunk, &mut out);
            }
            p.finish(&mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                printable(hostile),
                "{size}"
            );
        }
    }
}
