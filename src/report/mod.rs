//! Owns how an apply is shown: live on the console (indicatif progress on a
//! TTY, plain timestamped lines otherwise), and at the end as a summary
//! table, a JSON document, or a JUnit XML file.

mod console;
mod human;
mod junit;
mod liveness;
mod printable;
mod tally;

pub(crate) use console::Console;
pub(crate) use junit::write_junit;
pub(crate) use printable::{PrintableBytes, printable};
