//! A file of the run store read as text in bounded pieces: a run's output
//! may be far larger than anything a reader should hold at once.

/// Up to `max` bytes of `path` from `offset`, as text, whole characters
/// only; and the offset reached.
pub(crate) fn span(path: &std::path::Path, offset: u64, max: u64) -> (String, u64) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = open(path) else {
        return (String::new(), offset);
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(offset)).is_err() || f.take(max).read_to_end(&mut buf).is_err() {
        return (String::new(), offset);
    }
    // Whole UTF-8 characters only; the rest comes with the next read.
    let whole = match std::str::from_utf8(&buf) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => buf.len(),
    };
    (
        String::from_utf8_lossy(&buf[..whole]).into_owned(),
        offset + whole as u64,
    )
}

/// Opens a run-store file for reading only if it is a regular file itself:
/// not a symbolic link (an agent could point one anywhere) and not a FIFO
/// (opening or reading one would wait for a writer forever).
pub(crate) fn open(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(path)?;
    if f.metadata()?.is_file() {
        Ok(f)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}
