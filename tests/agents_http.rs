//! The HTTP kinds (`openai`: Chat Completions, `anthropic`: Messages)
//! driven end to end through `conductor apply` against the scripted model
//! server: the streamed answer, its usage priced with the agent's `price`,
//! retries of 429s, 5xx answers and cut streams (which are not
//! iterations), permanent errors, the idle-stream watchdog, Ctrl-C, budgets,
//! a missing key, and the key kept out of everything conductor writes.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::apply_support::{Flow, run_info, runs, st, state, wait_for};
use crate::model_server::{INPUT_TOKENS, ModelServer, OUTPUT_TOKENS, Turn};
use crate::test_builder::{Ran, Test};

/// What the scripted model answers.
pub(crate) const FINAL: &str = "FINAL: the answer, streamed in two halves.";
/// Distinct enough that redaction of it never touches other text.
pub(crate) const KEY: &str = "sk-http-scripted-4b8e2d1f";
/// Dollars per million input and output tokens in every test workflow.
const PRICE: (f64, f64) = (3.0, 15.0);

/// The scripted server's usage at [`PRICE`].
fn one_call_cost() -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "token counts of a scripted answer are far below 2^52"
    )]
    let (i, o) = (INPUT_TOKENS as f64, OUTPUT_TOKENS as f64);
    (i * PRICE.0 + o * PRICE.1) / 1e6
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    OpenAi,
    Anthropic,
}

impl Kind {
    pub(crate) fn key_var(self) -> &'static str {
        match self {
            Self::OpenAi => "OPENAI_API_KEY",
            Self::Anthropic => "ANTHROPIC_API_KEY",
        }
    }

    /// A workflow with agent `ai` of this kind pointed at `server`, and one
    /// node `n` with this `stop` table.
    pub(crate) fn workflow(self, server: &ModelServer, stop: &str) -> String {
        let (kind, base) = match self {
            // OpenAI-compatible servers are given with their `/v1`, as Ollama's is.
            Self::OpenAi => ("openai", format!("{}/v1", server.url())),
            Self::Anthropic => ("anthropic", server.url()),
        };
        format!(
            r#"version = 1
name = "http"

[agents.ai]
kind = "{kind}"
model = "scripted-model"
base_url = "{base}"
price = {{ input_per_mtok = {}, output_per_mtok = {} }}

[nodes.n]
agent = "ai"
prompt = "Answer the scripted question."
stop = {stop}
"#,
            PRICE.0, PRICE.1
        )
    }
}

/// `conductor apply --json` of a workflow with agent `ai` of this kind
/// pointed at `server`, with only its key set; it must exit with `status`.
fn apply(kind: Kind, server: &ModelServer, stop: &str, status: i32) -> Ran {
    Test::new()
        .workflow(kind.workflow(server, stop))
        .apply()
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env(kind.key_var(), KEY)
        .status(status)
        .run()
}

/// The one run folder of instance `n`.
fn only_run(ran: &Ran) -> PathBuf {
    let runs = ran.runs("n");
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

fn read(run: &Path, file: &str) -> String {
    std::fs::read_to_string(run.join(file)).unwrap_or_default()
}

fn assert_close(got: &serde_json::Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or(f64::NAN);
    assert!((got - want).abs() < 1e-9, "{what}: {got} != {want}");
}

/// Nothing conductor wrote holds the key, although the server got it.
fn assert_key_kept(flow: &Flow, server: &ModelServer) {
    let first = server.model_calls()[0].clone();
    let sent = [first.header("authorization"), first.header("x-api-key")];
    assert!(
        sent.iter().flatten().any(|v| v.contains(KEY)),
        "{:?}",
        first.headers
    );
    let files = flow.files();
    assert!(!files.is_empty());
    for (p, text) in files {
        assert!(!text.contains(KEY), "{} holds the API key", p.display());
    }
}

fn answers_in_one_iteration(kind: Kind) {
    let server = ModelServer::start([Turn::text(FINAL)]);
    let ran = apply(kind, &server, r#"{ timeout = "60s" }"#, 0);
    let why = ran.explain();
    // An HTTP agent's default success condition is one complete answer.
    assert_eq!(ran.state("n"), st("done", "exit_zero", 1), "{why}");

    let run = only_run(&ran);
    assert_eq!(read(&run, "output.md"), FINAL);
    assert_eq!(
        read(&run, "agent-stdout.txt"),
        FINAL,
        "the text as it streamed"
    );
    let info = run_info(&run);
    assert_eq!(info["status"], "completed", "{info:#}");
    assert_eq!(info["exit_code"], 0);
    assert_eq!(info["process_ownership"], "external");
    assert_eq!(info["stop_reason"], "exit_zero");
    assert_eq!(info["input_tokens"], INPUT_TOKENS, "{info:#}");
    assert_eq!(info["output_tokens"], OUTPUT_TOKENS, "{info:#}");
    assert_close(&info["cost_usd"], one_call_cost(), "run-info cost");
    let usage = &ran.instance("n")["usage"];
    assert_eq!(usage["input_tokens"], INPUT_TOKENS, "{:#}", ran.json());
    assert_eq!(usage["output_tokens"], OUTPUT_TOKENS, "{:#}", ran.json());
    assert_close(&usage["cost_usd"], one_call_cost(), "summary cost");
    assert_eq!(ran.task_kinds(), ["RUN_START", "RUN_STOP"]);

    // One request: the model, a stream, and prompt.md as the user message.
    let calls = server.model_calls();
    assert_eq!(calls.len(), 1, "{:#?}", server.requests());
    let body = &calls[0].body;
    assert_eq!(body["model"], "scripted-model");
    assert_eq!(body["stream"], true);
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{body:#}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], read(&run, "prompt.md"));
    // It runs no command and sees no file: it is told of neither.
    let sent = messages[0]["content"].as_str().unwrap_or_default();
    for local in ["JRUN_", "conductor bus", "DONE", "/runs/"] {
        assert!(
            !sent.contains(local),
            "an HTTP agent was told {local:?}: {sent}"
        );
    }
    match kind {
        Kind::OpenAi => {
            assert_eq!(calls[0].path, "/v1/chat/completions");
            assert_eq!(body["stream_options"]["include_usage"], true);
        }
        Kind::Anthropic => {
            assert_eq!(calls[0].path, "/v1/messages");
            assert_eq!(calls[0].header("anthropic-version"), Some("2023-06-01"));
            assert!(body["max_tokens"].as_u64().is_some(), "{body:#}");
        }
    }
    assert_key_kept(&ran, &server);
}

#[test]
fn openai_streams_its_answer_and_prices_its_usage() {
    answers_in_one_iteration(Kind::OpenAi);
}

#[test]
fn anthropic_streams_its_answer_and_prices_its_usage() {
    answers_in_one_iteration(Kind::Anthropic);
}

/// A 429 with Retry-After, then the answer: the retry is part of the one
/// iteration, and waited as long as the server asked.
fn retries_a_429(kind: Kind) {
    let server = ModelServer::start([
        Turn::Error {
            status: 429,
            retry_after: Some("1".into()),
        },
        Turn::text(FINAL),
    ]);
    let ran = apply(kind, &server, r#"{ timeout = "60s" }"#, 0);
    let why = ran.explain();
    assert_eq!(ran.state("n"), st("done", "exit_zero", 1), "{why}");
    let actions: Vec<String> = server.model_calls().into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["error 429", "text"], "{why}");
    let run = only_run(&ran);
    assert_eq!(read(&run, "output.md"), FINAL);
    let stderr = read(&run, "agent-stderr.txt");
    assert!(
        stderr.contains("scripted failure 429")
            && stderr.contains("retrying in 1.0s (Retry-After)"),
        "{stderr}"
    );
    // Usage is the answer's: the 429 reported none.
    assert_eq!(run_info(&run)["input_tokens"], INPUT_TOKENS);
}

#[test]
fn openai_retries_a_429_within_the_iteration_honouring_retry_after() {
    retries_a_429(Kind::OpenAi);
}

#[test]
fn anthropic_retries_a_429_within_the_iteration_honouring_retry_after() {
    retries_a_429(Kind::Anthropic);
}

/// A stream cut after its first event is asked again; the answer is the
/// whole second stream, not the cut one's start.
fn retries_a_cut_stream(kind: Kind) {
    let server = ModelServer::start([Turn::Cut, Turn::text(FINAL)]);
    let ran = apply(kind, &server, r#"{ timeout = "60s" }"#, 0);
    let why = ran.explain();
    assert_eq!(ran.state("n"), st("done", "exit_zero", 1), "{why}");
    let actions: Vec<String> = server.model_calls().into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["cut", "text"], "{why}");
    let run = only_run(&ran);
    assert_eq!(read(&run, "output.md"), FINAL);
    assert!(
        read(&run, "agent-stderr.txt").contains("the stream was cut"),
        "{why}"
    );
}

#[test]
fn openai_retries_a_cut_stream() {
    retries_a_cut_stream(Kind::OpenAi);
}

#[test]
fn anthropic_retries_a_cut_stream() {
    retries_a_cut_stream(Kind::Anthropic);
}

/// A server that always answers 500 (asking for no wait, to keep the test
/// short): each iteration makes a bounded number of calls and then fails
/// with `backend_error` (docs/agents.md, "Retries and limits": it counts
/// toward `max_iterations`, and the loop goes on), so the node fails at its
/// limit, with the server's message.
fn gives_up_on_a_failing_server(kind: Kind) {
    let server = ModelServer::start([Turn::Error {
        status: 500,
        retry_after: Some("0".into()),
    }]);
    let ran = apply(
        kind,
        &server,
        r#"{ timeout = "60s", max_iterations = 2 }"#,
        1,
    );
    let why = ran.explain();
    assert_eq!(ran.state("n"), st("failed", "max_iterations", 2), "{why}");
    assert_eq!(
        server.model_calls().len(),
        10,
        "per iteration, the first call and 4 retries"
    );
    let error = ran.instance("n")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("gave up after 5 attempts") && error.contains("scripted failure 500"),
        "{error}"
    );
    let infos: Vec<String> = ran
        .files()
        .into_iter()
        .filter(|(p, _)| p.ends_with("run-info.yaml"))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(infos.len(), 2);
    for info in &infos {
        assert!(info.contains("stop_reason: backend_error"), "{info}");
        assert!(info.contains("status: failed"), "{info}");
    }
    assert_eq!(
        ran.task_kinds(),
        ["RUN_START", "RUN_CRASH", "RUN_START", "RUN_CRASH"]
    );
}

#[test]
fn openai_fails_an_iteration_with_backend_error_after_bounded_retries() {
    gives_up_on_a_failing_server(Kind::OpenAi);
}

#[test]
fn anthropic_fails_an_iteration_with_backend_error_after_bounded_retries() {
    gives_up_on_a_failing_server(Kind::Anthropic);
}

/// A 401 is not retried, and fails the node at once (with iterations to
/// spare), with the server's message in the run's record and on the bus.
fn fails_at_once_on_401(kind: Kind) {
    let server = ModelServer::start([Turn::error(401)]);
    let ran = apply(
        kind,
        &server,
        r#"{ timeout = "60s", max_iterations = 3 }"#,
        1,
    );
    let why = ran.explain();
    assert_eq!(ran.state("n"), st("failed", "backend_error", 1), "{why}");
    assert_eq!(server.model_calls().len(), 1, "{why}");
    let run = only_run(&ran);
    let error = run_info(&run)["error_summary"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("401") && error.contains("scripted failure 401"),
        "{why}"
    );
    // The summary says why too, in the server's words.
    let instance_error = ran.instance("n")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        instance_error.contains("scripted failure 401"),
        "{:#}",
        ran.json()
    );
    let crash = ran
        .records("TASK-MESSAGE-BUS.md")
        .into_iter()
        .find(|r| r["type"] == "RUN_CRASH")
        .unwrap();
    assert!(
        crash["body"]
            .as_str()
            .is_some_and(|b| b.contains("scripted failure 401")),
        "{crash:#}"
    );
    assert_key_kept(&ran, &server);
}

#[test]
fn openai_fails_the_node_at_once_on_401_with_the_servers_message() {
    fails_at_once_on_401(Kind::OpenAi);
}

#[test]
fn anthropic_fails_the_node_at_once_on_401_with_the_servers_message() {
    fails_at_once_on_401(Kind::Anthropic);
}

/// A redirect is not followed: the key would go to whatever host it names
/// (headers like `x-api-key` are not dropped on the way). The node fails
/// at once, saying where the server pointed.
fn follows_no_redirect(kind: Kind) {
    let elsewhere = ModelServer::start([Turn::text(FINAL)]);
    let target = match kind {
        Kind::OpenAi => format!("{}/v1/chat/completions", elsewhere.url()),
        Kind::Anthropic => format!("{}/v1/messages", elsewhere.url()),
    };
    let server = ModelServer::start([Turn::Redirect(target.clone())]);
    let ran = apply(kind, &server, "{ max_iterations = 3 }", 1);
    let why = ran.explain();
    assert_eq!(ran.state("n"), st("failed", "backend_error", 1), "{why}");
    assert!(
        elsewhere.requests().is_empty(),
        "the key went to the redirect's host: {why}"
    );
    let error = ran.instance("n")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("307") && error.contains(&target) && error.contains("base_url"),
        "{error}"
    );
}

#[test]
fn openai_follows_no_redirect_with_its_key() {
    follows_no_redirect(Kind::OpenAi);
}

#[test]
fn anthropic_follows_no_redirect_with_its_key() {
    follows_no_redirect(Kind::Anthropic);
}

#[test]
fn budget_usd_from_price_stops_the_loop() {
    // Never done: each answer costs one_call_cost(); the budget allows one
    // and a half, so the second iteration goes over it.
    let server = ModelServer::start([Turn::text(FINAL)]);
    let budget = one_call_cost() * 1.5;
    let ran = apply(
        Kind::OpenAi,
        &server,
        &format!(r#"{{ promise = "NEVER", budget_usd = {budget}, max_iterations = 5 }}"#),
        1,
    );
    let why = ran.explain();
    assert_eq!(ran.state("n"), st("failed", "budget_usd", 2), "{why}");
    assert_close(
        &ran.instance("n")["usage"]["cost_usd"],
        2.0 * one_call_cost(),
        "two answers' cost",
    );
    assert_eq!(server.model_calls().len(), 2);
}

#[test]
fn a_stalled_stream_is_cut_by_idle_timeout_without_retries() {
    let server = ModelServer::start([Turn::Stall]);
    let ran = apply(
        Kind::OpenAi,
        &server,
        r#"{ timeout = "60s", idle_timeout = "1s", max_iterations = 1 }"#,
        1,
    );
    let why = ran.explain();
    assert_eq!(ran.state("n"), st("failed", "idle_timeout", 1), "{why}");
    assert_eq!(server.model_calls().len(), 1, "{why}");
    // What streamed before the stall is kept.
    let run = only_run(&ran);
    let streamed = read(&run, "agent-stdout.txt");
    assert!(
        !streamed.is_empty() && "partial answer, cut".starts_with(&streamed),
        "{why}"
    );
}

#[test]
fn ctrl_c_cancels_a_call_in_flight() {
    let server = ModelServer::start([Turn::Stall]);
    let flow = Flow::new(&Kind::Anthropic.workflow(&server, r#"{ timeout = "60s" }"#));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(flow.path())
        .args(["apply", "flow.toml", "--json", "--root"])
        .arg(flow.root())
        .env("ANTHROPIC_API_KEY", KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the call to reach the server", || {
        !server.model_calls().is_empty()
    });
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(state(&summary, "n"), st("failed", "interrupted", 1));
    let runs = runs(&summary, "n");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let info = run_info(&runs[0]);
    assert_eq!(info["stop_reason"], "interrupted", "{info:#}");
    assert_eq!(server.model_calls().len(), 1, "no retry after Ctrl-C");
}
