//! The one integration-test binary: it drives the real `conductor` binary
//! (and, for property tests, the library) the way a user does.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap is a failed test, with the location; that is what tests want"
)]

mod support;

mod agents_http;
mod agents_http_setup;
mod agents_price;
mod agents_real;
mod apply_graph;
mod apply_incremental;
mod apply_process;
mod apply_stop;
mod apply_store;
mod apply_support;
mod architecture;
mod bus;
mod bus_roundtrip;
mod clock;
mod console;
mod containment;
mod diagnostics;
mod examples;
mod executor_config;
mod fake_agent;
mod instances;
mod invalid;
mod isolation;
mod load;
mod merge_nodes;
mod model_server;
mod notify;
mod plan;
mod preamble;
mod properties;
mod readme;
mod schema;
mod secrets;
mod serve_api;
mod serve_browser;
mod serve_support;
mod slurm;
mod status_logs;
mod templated_fields;
mod test_builder;
mod values;
mod watch;
