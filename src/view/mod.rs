//! Owns what is read back from the run store to show a user: which applies
//! there are, and one apply's instances, runs and iterations, as `status`,
//! `logs` and `conductor serve` show them (one reading for every view).

pub(crate) mod applies;
pub(crate) mod iterations;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod text;
pub(crate) mod transcript;
pub(crate) mod workflows;
