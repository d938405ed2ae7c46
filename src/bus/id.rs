//! Message ids and timestamps in the seed's formats: ids
//! `MSG-YYYYMMDD-HHMMSS-<9-digit ns>-PID<5 digits>-<4-digit seq>`, times
//! RFC 3339 UTC with the fraction's trailing zeros trimmed.

use std::sync::atomic::{AtomicU32, Ordering};

use jiff::Timestamp;
use jiff::tz::Offset;

/// Makes message ids for one process. The per-process sequence keeps ids
/// from one writer distinct even within one nanosecond.
#[derive(Debug)]
pub struct IdGenerator {
    seq: AtomicU32,
    pid: u32,
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self {
            seq: AtomicU32::new(0),
            pid: std::process::id() % 100_000,
        }
    }
}

impl IdGenerator {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new id for a message stamped `now`. Written digit by digit into a
    /// stack buffer rather than through `format!`: this is on every append's
    /// path, and the formatting machinery cost a third of an append.
    pub fn next(&self, now: Timestamp) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) % 10_000;
        let t = Offset::UTC.to_datetime(now);
        let mut id = Ascii::default();
        id.text(b"MSG-");
        id.num(year(t.year()), 4);
        id.num(t.month().unsigned_abs().into(), 2);
        id.num(t.day().unsigned_abs().into(), 2);
        id.text(b"-");
        id.num(t.hour().unsigned_abs().into(), 2);
        id.num(t.minute().unsigned_abs().into(), 2);
        id.num(t.second().unsigned_abs().into(), 2);
        id.text(b"-");
        id.num(t.subsec_nanosecond().unsigned_abs(), 9);
        id.text(b"-PID");
        id.num(self.pid, 5);
        id.text(b"-");
        id.num(seq, 4);
        id.into_string()
    }
}

/// A year as the formats print it; the system clock gives none before 1970.
fn year(y: i16) -> u32 {
    u32::try_from(y).unwrap_or(0)
}

/// A short ASCII text built on the stack. Anything past its capacity is
/// dropped, which the fixed formats below never reach.
struct Ascii {
    buf: [u8; 64],
    len: usize,
}

impl Default for Ascii {
    fn default() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl Ascii {
    fn text(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }

    /// `n` in decimal, zero-padded to at least `width` digits.
    fn num(&mut self, mut n: u32, width: usize) {
        let mut digits = [b'0'; 10];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.text(&digits[at.min(digits.len().saturating_sub(width))..]);
    }

    fn into_string(self) -> String {
        // Only ASCII was written: the check cannot fail.
        String::from_utf8_lossy(&self.buf[..self.len]).into_owned()
    }
}

/// `2026-02-21T19:02:37.378369Z`: UTC, fraction without trailing zeros, as
/// jiff prints a timestamp (a test holds the two together), by hand for the
/// same reason as the ids.
pub fn format_ts(ts: Timestamp) -> String {
    let t = Offset::UTC.to_datetime(ts);
    if !(0..=9999).contains(&t.year()) {
        return ts.to_string();
    }
    let mut out = Ascii::default();
    out.num(year(t.year()), 4);
    out.text(b"-");
    out.num(t.month().unsigned_abs().into(), 2);
    out.text(b"-");
    out.num(t.day().unsigned_abs().into(), 2);
    out.text(b"T");
    out.num(t.hour().unsigned_abs().into(), 2);
    out.text(b":");
    out.num(t.minute().unsigned_abs().into(), 2);
    out.text(b":");
    out.num(t.second().unsigned_abs().into(), 2);
    let mut fraction = t.subsec_nanosecond().unsigned_abs();
    if fraction != 0 {
        let mut digits = 9;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            digits -= 1;
        }
        out.text(b".");
        out.num(fraction, digits);
    }
    out.text(b"Z");
    out.into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_seed_shape_and_differ() {
        let g = IdGenerator::new();
        let now: Timestamp = "2026-03-01T10:15:02.123456789Z".parse().unwrap();
        let a = g.next(now);
        let b = g.next(now);
        assert_ne!(a, b);
        assert!(a.starts_with("MSG-20260301-101502-123456789-PID"), "{a}");
        assert_eq!(a.len(), "MSG-20260301-101502-123456789-PID04242-0007".len());
    }

    proptest::proptest! {
        /// The hand-written formats agree with jiff's printer and with the
        /// `format!` the ids were first written with.
        #[test]
        fn stamps_agree_with_jiff(secs in -62_000_000_000i64..253_402_300_799, nanos in 0i32..1_000_000_000, zeros in 0u32..9) {
            let nanos = nanos - nanos % 10i32.pow(zeros);
            let ts = Timestamp::new(secs, nanos).unwrap();
            proptest::prop_assert_eq!(format_ts(ts), ts.to_string());
            let utc = ts.to_zoned_datetime(jiff::tz::TimeZone::UTC);
            let g = IdGenerator::new();
            if utc.year() >= 0 {
                let expected = format!(
                    "MSG-{:04}{:02}{:02}-{:02}{:02}{:02}-{:09}-PID{:05}-0000",
                    utc.year(), utc.month(), utc.day(), utc.hour(), utc.minute(), utc.second(),
                    utc.subsec_nanosecond(), std::process::id() % 100_000
                );
                proptest::prop_assert_eq!(g.next(ts), expected);
            }
        }
    }

    #[test]
    fn timestamps_trim_trailing_zeros() {
        let ts: Timestamp = "2026-03-01T10:15:30.000004Z".parse().unwrap();
        assert_eq!(format_ts(ts), "2026-03-01T10:15:30.000004Z");
    }
}
