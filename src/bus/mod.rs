//! Owns the file bus: the append-only, human-readable logs that conductor,
//! its agents and people read and post to (docs/bus.md). The on-disk format is
//! the Go seed's (a `---` line, a YAML header, a `---` line, the body), so
//! that tools reading one read the other, without the seed's bugs: a body
//! line `---` round-trips, a torn last record is skipped, the tail of a large
//! bus is read from its end, and appends are one write under an exclusive
//! lock. See docs/bus.md.

mod id;
mod reader;
mod record;
mod writer;

pub use id::{IdGenerator, format_ts};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use reader::parse;
pub use reader::{ReadError, read_all, read_from, read_since, tail, tail_with_offset};
pub use record::{Message, NewMessage, escape_body, unescape_body};
pub use writer::{AppendError, BusWriter};
