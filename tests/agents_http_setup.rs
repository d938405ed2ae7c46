//! What is refused before an HTTP agent runs: a key variable that is not
//! set (exit 3, with nothing sent), and an agent without a `model` or with
//! keys only a process has (exit 2).

use crate::agents_http::{FINAL, KEY, Kind, explain};
use crate::apply_support::Flow;
use crate::model_server::{ModelServer, Turn};

#[test]
fn a_missing_key_is_an_environment_error_before_anything_starts() {
    let server = ModelServer::start([Turn::text(FINAL)]);
    let flow = Flow::new(
        &Kind::Anthropic
            .workflow(&server, "{}")
            .replace("[nodes.n]", "api_key_env = \"MY_LLM_KEY\"\n\n[nodes.n]"),
    );
    let out = flow
        .command(&[])
        .env_remove("MY_LLM_KEY")
        .env("ANTHROPIC_API_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out, &flow));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("agent `ai`") && stderr.contains("MY_LLM_KEY is not set"),
        "{stderr}"
    );
    assert!(server.requests().is_empty());

    // With the variable `api_key_env` names, the key it holds is the one sent.
    let out = flow
        .command(&[])
        .env_remove("ANTHROPIC_API_KEY")
        .env("MY_LLM_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out, &flow));
    assert_eq!(server.model_calls()[0].header("x-api-key"), Some(KEY));
}

#[test]
fn an_http_agent_needs_a_model_and_takes_no_program_arguments() {
    let server = ModelServer::start([Turn::text(FINAL)]);
    let base = Kind::OpenAi.workflow(&server, "{}");
    let no_model = Flow::new(&base.replace("model = \"scripted-model\"\n", ""));
    let out = no_model
        .command(&[])
        .env("OPENAI_API_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out, &no_model));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs a `model`"), "{stderr}");

    let args = Flow::new(&base.replace(
        "[nodes.n]",
        "args = [\"--verbose\"]\nextra_args = [\"-x\"]\n\n[nodes.n]",
    ));
    let out = crate::support::conductor()
        .current_dir(args.path())
        .args(["validate", "flow.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in ["`args`", "`extra_args`"] {
        assert!(
            stderr.contains(&format!("{key} is only for process agents, not \"openai\"")),
            "{stderr}"
        );
    }
    assert!(server.requests().is_empty());
}
