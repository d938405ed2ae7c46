//! What makes applying incremental (docs/watch.md), below the runner: the
//! [`fingerprint`] of an instance and the [`parts`] it is made of, hashing
//! `inputs` ([`inputs`]), what earlier applies left that is up to date or
//! resumes ([`prior`], [`resume`]), closing the records of an apply whose
//! conductor died ([`stale`]), and what `plan` says an apply would do
//! ([`freshness`]). It reads the run store; it never runs anything.

pub(crate) mod digest;
pub(crate) mod fingerprint;
pub(crate) mod freshness;
pub(crate) mod inputs;
pub(crate) mod parts;
pub(crate) mod prior;
pub(crate) mod resume;
pub(crate) mod stale;
pub(crate) mod template_patterns;
