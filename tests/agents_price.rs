//! Per-agent prices for the CLI kinds, with the fake agent printing each
//! CLI's event stream (200 input and 40 output tokens a call; claude's
//! stream also says it cost $0.0016): `price` gives codex and gemini,
//! which report tokens only, a cost that budgets then use, and never
//! overrides the cost claude reports itself.

use crate::apply_support::{instance, st};
use crate::test_builder::Test;

/// An agent `ai` of this CLI kind played by the fake agent, priced at $3 and
/// $15 per million tokens, and one node `n` with this `stop` table.
fn workflow(cli: &str, stop: &str) -> String {
    format!(
        r#"version = 1
name = "t"

[agents.ai]
kind = "{cli}"
command = ["conductor"]
args = ["__fake-agent", "--stream", "{cli}"]
price = {{ input_per_mtok = 3, output_per_mtok = 15 }}

[nodes.n]
agent = "ai"
prompt = "p"
stop = {stop}
"#
    )
}

/// 200 tokens at $3/M and 40 at $15/M.
const PRICED: f64 = 0.0012;

fn cost(summary: &serde_json::Value) -> f64 {
    instance(summary, "n")["usage"]["cost_usd"]
        .as_f64()
        .unwrap_or(f64::NAN)
}

#[test]
fn price_gives_codex_and_gemini_a_cost_in_the_run_and_the_summary() {
    for cli in ["codex", "gemini"] {
        let ran = Test::new()
            .workflow(workflow(cli, "{ exit_zero = true }"))
            .apply()
            .run();
        assert_eq!(ran.state("n"), st("done", "exit_zero", 1), "{cli}");
        assert!(
            (cost(ran.json()) - PRICED).abs() < 1e-12,
            "{cli}: {:#}",
            ran.json()
        );
        let info = ran
            .files()
            .into_iter()
            .find(|(p, _)| p.ends_with("run-info.yaml"))
            .map(|(_, t)| t)
            .unwrap();
        assert!(info.contains("cost_usd: 0.0012"), "{cli}: {info}");
    }
}

#[test]
fn a_cost_claude_reports_is_kept_over_the_price() {
    let ran = Test::new()
        .workflow(workflow("claude", "{ exit_zero = true }"))
        .apply()
        .run();
    assert!(
        (cost(ran.json()) - 0.0016).abs() < 1e-12,
        "{:#}",
        ran.json()
    );
}

#[test]
fn budget_usd_works_from_a_price() {
    // Never done; $0.0012 a call goes over $0.002 on the second.
    let ran = Test::new()
        .workflow(workflow(
            "codex",
            r#"{ promise = "NEVER", budget_usd = 0.002, max_iterations = 5 }"#,
        ))
        .apply()
        .status(1)
        .run();
    assert_eq!(ran.state("n"), st("failed", "budget_usd", 2));
    assert!(
        (cost(ran.json()) - 2.0 * PRICED).abs() < 1e-12,
        "{:#}",
        ran.json()
    );
}
