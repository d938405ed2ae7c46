//! Message ids and timestamps in the seed's formats: ids
//! `MSG-YYYYMMDD-HHMMSS-<9-digit ns>-PID<5 digits>-<4-digit seq>`, times
//! RFC 3339 UTC with the fraction's trailing zeros trimmed.

use std::sync::atomic::{AtomicU32, Ordering};

use jiff::Timestamp;

/// Makes message ids for one process. The per-process sequence keeps ids
/// from one writer distinct even within one nanosecond.
#[derive(Debug, Default)]
pub struct IdGenerator {
    seq: AtomicU32,
}

impl IdGenerator {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new id for a message stamped `now`.
    pub fn next(&self, now: Timestamp) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) % 10_000;
        let utc = now.to_zoned_datetime(jiff::tz::TimeZone::UTC);
        format!(
            "MSG-{:04}{:02}{:02}-{:02}{:02}{:02}-{:09}-PID{:05}-{:04}",
            utc.year(),
            utc.month(),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second(),
            now.subsec_nanosecond(),
            std::process::id() % 100_000,
            seq
        )
    }
}

/// `2026-02-21T19:02:37.378369Z`: UTC, fraction without trailing zeros.
pub fn format_ts(ts: Timestamp) -> String {
    ts.to_string()
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

    #[test]
    fn timestamps_trim_trailing_zeros() {
        let ts: Timestamp = "2026-03-01T10:15:30.000004Z".parse().unwrap();
        assert_eq!(format_ts(ts), "2026-03-01T10:15:30.000004Z");
    }
}
