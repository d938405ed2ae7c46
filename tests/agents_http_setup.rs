//! What is refused before an HTTP agent runs: a key variable that is not
//! set (exit 3, with nothing sent), and an agent without a `model` or with
//! keys only a process has (exit 2).

use crate::agents_http::{FINAL, KEY, Kind};
use crate::model_server::{ModelServer, Turn};
use crate::test_builder::Test;

#[test]
fn a_missing_key_is_an_environment_error_before_anything_starts() {
    let server = ModelServer::start([Turn::text(FINAL)]);
    let refused = Test::new()
        .workflow(
            Kind::Anthropic
                .workflow(&server, "{}")
                .replace("[nodes.n]", "api_key_env = \"MY_LLM_KEY\"\n\n[nodes.n]"),
        )
        .apply()
        .env_remove("MY_LLM_KEY")
        .env("ANTHROPIC_API_KEY", KEY)
        .status(3)
        .stderr_has("agent `ai`")
        .stderr_has("MY_LLM_KEY is not set")
        .run();
    assert!(server.requests().is_empty());

    // With the variable `api_key_env` names, the key it holds is the one sent.
    refused
        .then()
        .apply()
        .env_remove("ANTHROPIC_API_KEY")
        .env("MY_LLM_KEY", KEY)
        .run();
    assert_eq!(server.model_calls()[0].header("x-api-key"), Some(KEY));
}

#[test]
fn an_http_agent_needs_a_model_and_takes_no_program_arguments() {
    let server = ModelServer::start([Turn::text(FINAL)]);
    let base = Kind::OpenAi.workflow(&server, "{}");
    Test::new()
        .workflow(base.replace("model = \"scripted-model\"\n", ""))
        .apply()
        .env("OPENAI_API_KEY", KEY)
        .status(2)
        .stderr_has("needs a `model`")
        .run();

    let mut args = Test::new()
        .workflow(base.replace(
            "[nodes.n]",
            "args = [\"--verbose\"]\nextra_args = [\"-x\"]\n\n[nodes.n]",
        ))
        .args(["validate", "flow.toml"])
        .status(2);
    for key in ["`args`", "`extra_args`"] {
        args = args.stderr_has(format!("{key} is only for process agents, not \"openai\""));
    }
    args.run();
    assert!(server.requests().is_empty());
}
