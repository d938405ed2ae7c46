//! The one integration-test binary: it drives the real `conductor` binary
//! (and, for property tests, the library) the way a user does.

mod support;

mod examples;
mod invalid;
mod plan;
mod properties;
mod readme;
mod schema;
