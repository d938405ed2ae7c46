//! The wall clock that stamps bus records, message ids, run ids and
//! run-info times, and the one place it can be moved. Conductor never orders
//! anything by these stamps (a bus cursor is a file position, run folders sort
//! by their sequence number, durations use the monotonic clock), so a wall
//! clock that jumps backwards must change nothing but the stamps. To test
//! that for real, `CONDUCTOR_TEST_CLOCK` may name a file holding a signed
//! offset in seconds that is added to the system clock; the file is read at
//! every stamp, so a test moves the clock of a running apply (and of the
//! agents and `bus post`s it starts, which inherit the variable) by
//! rewriting it. A missing file is no offset.

use std::path::PathBuf;
use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};

/// The variable naming the offset file.
pub(crate) const TEST_CLOCK_VAR: &str = "CONDUCTOR_TEST_CLOCK";

fn offset_file() -> Option<&'static PathBuf> {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FILE.get_or_init(|| {
        std::env::var_os(TEST_CLOCK_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .as_ref()
}

/// The current time, moved by the test clock's offset if one is set.
pub(crate) fn now() -> Timestamp {
    let now = Timestamp::now();
    match offset_file() {
        None => now,
        Some(file) => now.saturating_add(offset(file)).unwrap_or(now),
    }
}

fn offset(file: &std::path::Path) -> SignedDuration {
    let Ok(text) = std::fs::read_to_string(file) else {
        return SignedDuration::ZERO;
    };
    match text.trim().parse::<i64>() {
        Ok(secs) => SignedDuration::from_secs(secs),
        Err(e) => {
            tracing::warn!(
                "{TEST_CLOCK_VAR} file {} holds {:?}, not a signed number of seconds ({e}); the clock is not moved",
                file.display(),
                text.trim()
            );
            SignedDuration::ZERO
        }
    }
}
