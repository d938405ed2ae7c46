//! Owns `conductor serve` (and `apply --ui`, `watch --ui`): the web page and
//! the HTTP API over the run store (docs/api.md, docs/ui.md). It reads what
//! `status` and `logs` read (`view`), streams the bus and run output as
//! server-sent events, and acts only through what a person at a terminal
//! would do: a bus post, a Ctrl-C to the running conductor, a new
//! `conductor apply`. It never writes workflow-level state itself.

mod act;
mod assets;
mod documents;
mod error;
mod guard;
mod live;
mod metrics;
mod openapi;
mod options;
mod read;
mod routes;
mod state;
mod summary;

pub(crate) use options::{ServeError, ServeOptions};
pub(crate) use routes::{Started, start};
