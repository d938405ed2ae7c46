//! Owns carrying a run's output from its pipe to its file, redacted on the
//! way (docs/security.md, "Secrets"): a run that could print a key (one is
//! in conductor's environment) writes its stdout and stderr into pipes the
//! keeper reads, and only the redacted bytes reach `agent-stdout.txt`,
//! `agent-stderr.txt` or conductor's stderr. Reads are a bounded chunk at a
//! time, so a flood of output costs the keeper no memory either.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use crate::secrets::StreamRedactor;

/// How much of a pipe is read at once.
const CHUNK: usize = 64 << 10;

/// One stream of one run.
#[derive(Debug)]
pub(super) struct Relay {
    pipe: File,
    sink: File,
    redactor: StreamRedactor,
    out: Vec<u8>,
}

impl Relay {
    /// A relay from `pipe` (the read end, non-blocking) to `sink`.
    pub(super) fn new(pipe: OwnedFd, sink: OwnedFd, redactor: StreamRedactor) -> Self {
        Self {
            pipe: File::from(pipe),
            sink: File::from(sink),
            redactor,
            out: Vec::new(),
        }
    }

    pub(super) fn pipe(&self) -> &File {
        &self.pipe
    }

    /// Moves what the pipe holds now to the sink; `true` once the pipe has
    /// ended (every writer closed it).
    pub(super) fn pump(&mut self) -> bool {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match self.pipe.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    self.redactor
                        .push(buf.get(..n).unwrap_or_default(), &mut self.out);
                    self.flush();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Nothing more for now (or a broken pipe: nothing more ever).
                Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock,
            }
        }
    }

    /// Drains the pipe and writes what was held back: the run has ended.
    pub(super) fn finish(mut self) {
        self.pump();
        self.redactor.finish(&mut self.out);
        self.flush();
    }

    fn flush(&mut self) {
        // A sink that cannot be written (a full disk) loses this output,
        // as a file the agent wrote itself would; the run goes on.
        let _ = self.sink.write_all(&self.out);
        self.out.clear();
    }
}
