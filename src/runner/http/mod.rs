//! Owns HTTP agents (`openai`, `anthropic`): one iteration is one streamed
//! model call with the prompt as the user message. The text goes to
//! agent-stdout.txt as it arrives; what went wrong, and each retry, goes to
//! agent-stderr.txt. Transient failures (429, 408, 409, 5xx, a connection
//! that fails or a stream that is cut or stalls) are retried with backoff,
//! honouring Retry-After, a bounded number of times within the iteration's
//! time (DESIGN §9.11); permanent ones (other 4xx) are not. The iteration's
//! timeout and deadline, Ctrl-C and a watch's re-plan end the call wherever
//! it is. The wire formats live in `openai` and `anthropic`, the event
//! framing in `sse`.

mod anthropic;
mod openai;
mod sse;

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use super::backend::StreamReport;
use super::context::{Shared, StopLevel, reached};
use super::iteration::{Cut, Request};
use crate::model::AgentKind;

/// Calls per iteration: the first and four retries, as in OpenAI's and
/// Anthropic's SDKs' backoff but with two more tries, since an agent loop
/// loses more by failing an iteration than a chat does by a late reply.
const ATTEMPTS: u32 = 5;
/// First retry delay; it doubles per retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// A stream that sends nothing this long is taken for dead and retried,
/// when the node sets no `idle_timeout`. Long enough for a reasoning
/// model's silent thinking.
const DEFAULT_IDLE: Duration = Duration::from_mins(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Error bodies are read this far: enough for any API's message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Which wire format an agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
}

/// An HTTP agent, resolved from its `[agents]` table.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    pub wire: Wire,
    /// The full endpoint URL.
    pub url: String,
    pub model: String,
    /// The variable that holds the key: `api_key_env`, else the vendor's.
    pub key_var: String,
    /// The call as run-info.yaml's `commandline` shows it.
    pub call: String,
}

impl HttpSpec {
    /// The spec of an HTTP kind; `None` for process kinds.
    pub fn new(
        kind: AgentKind,
        base_url: Option<&str>,
        model: Option<&str>,
        api_key_env: Option<&str>,
    ) -> Result<Option<Self>, String> {
        let (wire, default_url, default_key) = match kind {
            AgentKind::Openai => (Wire::OpenAi, openai::DEFAULT_BASE_URL, "OPENAI_API_KEY"),
            AgentKind::Anthropic => (
                Wire::Anthropic,
                anthropic::DEFAULT_BASE_URL,
                "ANTHROPIC_API_KEY",
            ),
            _ => return Ok(None),
        };
        let model = model.filter(|m| !m.is_empty()).ok_or_else(|| {
            format!(
                "kind \"{}\" needs a `model` (the name the API knows it by)",
                kind.as_str()
            )
        })?;
        let base = base_url.unwrap_or(default_url);
        let url = match wire {
            Wire::OpenAi => openai::endpoint(base),
            Wire::Anthropic => anthropic::endpoint(base),
        };
        reqwest::Url::parse(&url).map_err(|e| format!("`base_url` {base:?} is not a URL: {e}"))?;
        Ok(Some(Self {
            wire,
            call: format!("POST {url} (model {model})"),
            url,
            model: model.to_string(),
            key_var: api_key_env.unwrap_or(default_key).to_string(),
        }))
    }
}

/// What one attempt's stream has said so far.
#[derive(Debug, Default)]
pub struct Answer {
    pub text: String,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// Why the model stopped (`finish_reason`, `stop_reason`), once it said.
    pub stop_reason: Option<String>,
    /// The stream's end marker (`[DONE]`, `message_stop`) arrived.
    pub ended: bool,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("HTTP {status}: {message}")]
    Status {
        status: StatusCode,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("cannot reach the server: {0}")]
    Connect(String),
    #[error("the stream was cut before the answer was complete{0}")]
    Cut(String),
    #[error("the stream sent nothing for {}s", .0.as_secs())]
    Stalled(Duration),
    #[error("the server reported an error in the stream: {0}")]
    InStream(String),
    #[error("{0}")]
    Protocol(String),
}

impl AttemptError {
    /// Worth another try: the same request may well succeed.
    fn transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
            }
            Self::Protocol(_) => false,
            _ => true,
        }
    }

    fn from_reqwest(e: &reqwest::Error) -> Self {
        // reqwest's own text is terse; the causes say what really failed.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        if e.is_connect() || e.is_timeout() {
            Self::Connect(text)
        } else if e.is_builder() {
            Self::Protocol(text)
        } else {
            Self::Cut(format!(" ({text})"))
        }
    }
}

/// Everything the call has produced, kept outside the call so that what a
/// cut call streamed is still there.
#[derive(Debug, Default)]
struct State {
    /// The attempt in flight (or the last one).
    current: Answer,
    /// Tokens of earlier attempts: billed even when their stream was cut.
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    /// Why the call failed, when it did.
    failure: Option<String>,
}

impl State {
    fn next_attempt(&mut self) {
        let done = std::mem::take(&mut self.current);
        let add = |total: &mut Option<u64>, n: Option<u64>| {
            if let Some(n) = n {
                *total = Some(total.unwrap_or(0) + n);
            }
        };
        add(&mut self.input_tokens, done.input_tokens);
        add(&mut self.output_tokens, done.output_tokens);
    }

    fn report(mut self) -> StreamReport {
        let text = std::mem::take(&mut self.current.text);
        self.next_attempt();
        StreamReport {
            answer: Some(text),
            failed: self.failure.is_some(),
            error: self.failure,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: None,
        }
    }
}

/// The run's stdout and stderr files; everything written is redacted.
struct Files<'a> {
    stdout: File,
    stderr: File,
    redactor: &'a crate::secrets::Redactor,
}

impl std::fmt::Debug for Files<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files").finish_non_exhaustive()
    }
}

impl Files<'_> {
    fn out(&mut self, text: &str) {
        if let Err(e) = self.stdout.write_all(self.redactor.redact(text).as_bytes()) {
            tracing::warn!("cannot write the agent's stdout: {e}");
        }
    }

    fn log(&mut self, line: &str) {
        let line = format!("{}\n", self.redactor.redact(line));
        if let Err(e) = self.stderr.write_all(line.as_bytes()) {
            tracing::warn!("cannot write the agent's stderr: {e}");
        }
    }
}

/// Makes the call of one iteration; the limit that cut it, if one did, and
/// what it answered.
pub async fn run(
    shared: &Shared,
    req: &Request<'_>,
    spec: &HttpSpec,
    env: &[(String, String)],
    stdout: &Path,
    stderr: &Path,
) -> std::io::Result<(Option<Cut>, StreamReport)> {
    let append = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
    };
    let mut files = Files {
        stdout: append(stdout)?,
        stderr: append(stderr)?,
        redactor: &shared.redactor,
    };
    let mut state = State::default();
    // The agent's own environment decides, so `env` in the workflow can set the key.
    let key = env
        .iter()
        .find(|(k, _)| *k == spec.key_var)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let Some(key) = key else {
        let why = format!("the API key variable {} is not set", spec.key_var);
        files.log(&why);
        state.failure = Some(why);
        return Ok((Some(Cut::Rejected), state.report()));
    };
    let started = Instant::now();
    let end = req
        .deadline
        .map_or(started + req.timeout, |d| d.min(started + req.timeout));
    let cut = {
        let call = call(spec, &key, req, end, &mut files, &mut state);
        tokio::pin!(call);
        let deadline = async {
            match req.deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cut = &mut call => cut,
            () = tokio::time::sleep(req.timeout) => Some(Cut::Timeout),
            () = deadline => Some(Cut::Deadline),
            () = reached(shared.stop.clone(), StopLevel::Graceful) => Some(Cut::Interrupted),
            () = req.cancel.cancelled() => Some(Cut::Invalidated),
        }
    };
    if let Some(c) = cut.filter(|c| !matches!(c, Cut::Backend | Cut::Rejected)) {
        files.log(&format!("call stopped by conductor ({})", c.as_str()));
    }
    Ok((cut, state.report()))
}

/// The attempts of one call; `Some(cut)` when it did not end in an answer.
async fn call(
    spec: &HttpSpec,
    key: &str,
    req: &Request<'_>,
    end: Instant,
    files: &mut Files<'_>,
    state: &mut State,
) -> Option<Cut> {
    // Refused for good: the node fails. Out of retries or time: the
    // iteration fails, and the loop may try again.
    let refuse = |state: &mut State, files: &mut Files<'_>, why: String| {
        files.log(&why);
        state.failure = Some(why);
        Some(Cut::Rejected)
    };
    let fail = |state: &mut State, files: &mut Files<'_>, why: String| {
        files.log(&why);
        state.failure = Some(why);
        Some(Cut::Backend)
    };
    if reqwest::header::HeaderValue::from_str(key).is_err() {
        let why = format!(
            "the API key in {} holds characters an HTTP header cannot carry",
            spec.key_var
        );
        return refuse(state, files, why);
    }
    let client = match reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => return refuse(state, files, format!("cannot set up an HTTP client: {e}")),
    };
    let body = match spec.wire {
        Wire::OpenAi => openai::body(&spec.model, req.prompt),
        Wire::Anthropic => anthropic::body(&spec.model, req.prompt),
    }
    .to_string();
    let idle = req.idle_timeout.unwrap_or(DEFAULT_IDLE);
    let mut attempt = 0;
    loop {
        attempt += 1;
        state.next_attempt();
        let error = match once(&client, spec, key, &body, idle, files, &mut state.current).await {
            Ok(()) => return None,
            Err(e) => e,
        };
        // A limit the node sets is a limit, not a glitch to retry.
        if matches!(error, AttemptError::Stalled(_)) && req.idle_timeout.is_some() {
            files.log(&error.to_string());
            return Some(Cut::IdleTimeout);
        }
        if !error.transient() {
            return refuse(state, files, error.to_string());
        }
        if attempt == ATTEMPTS {
            return fail(
                state,
                files,
                format!("gave up after {ATTEMPTS} attempts: {error}"),
            );
        }
        let asked = match &error {
            AttemptError::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        let wait = asked.unwrap_or_else(|| backoff(attempt));
        if Instant::now() + wait >= end {
            let why = format!(
                "{error}; the next attempt would start in {:.1}s, after the iteration's time is up",
                wait.as_secs_f64()
            );
            return fail(state, files, why);
        }
        files.log(&format!(
            "attempt {attempt} of {ATTEMPTS}: {error}; retrying in {:.1}s{}",
            wait.as_secs_f64(),
            if asked.is_some() {
                " (Retry-After)"
            } else {
                ""
            }
        ));
        if !state.current.text.is_empty() {
            files.out("\n[conductor: the stream broke off; the answer starts again]\n");
        }
        tokio::time::sleep(wait).await;
    }
}

/// One request and its stream, into `answer`.
async fn once(
    client: &reqwest::Client,
    spec: &HttpSpec,
    key: &str,
    body: &str,
    idle: Duration,
    files: &mut Files<'_>,
    answer: &mut Answer,
) -> Result<(), AttemptError> {
    let request = client
        .post(&spec.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .body(body.to_string());
    let request = match spec.wire {
        Wire::OpenAi => openai::authorize(request, key),
        Wire::Anthropic => anthropic::authorize(request, key),
    };
    let mut response = tokio::time::timeout(idle, request.send())
        .await
        .map_err(|_| AttemptError::Stalled(idle))?
        .map_err(|e| AttemptError::from_reqwest(&e))?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = retry_after(response.headers());
        let text = read_error_body(&mut response, idle).await;
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| error_message(&v))
            .unwrap_or_else(|| text.trim().chars().take(500).collect());
        return Err(AttemptError::Status {
            status,
            message,
            retry_after,
        });
    }
    let kind = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !kind.contains("event-stream") {
        return Err(AttemptError::Protocol(format!(
            "the server answered with {kind:?}, not an event stream"
        )));
    }
    let mut parser = sse::Parser::default();
    loop {
        let chunk = match tokio::time::timeout(idle, response.chunk()).await {
            Err(_) => return Err(AttemptError::Stalled(idle)),
            Ok(Err(e)) => return Err(AttemptError::from_reqwest(&e)),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(bytes))) => bytes,
        };
        let events = parser
            .feed(&chunk)
            .map_err(|e| AttemptError::Protocol(e.to_string()))?;
        for event in events {
            let delta = match spec.wire {
                Wire::OpenAi => openai::event(answer, &event),
                Wire::Anthropic => anthropic::event(answer, &event),
            }
            .map_err(AttemptError::InStream)?;
            if let Some(delta) = delta {
                files.out(&delta);
                answer.text.push_str(&delta);
            }
            // Some servers hold the connection open after the end marker.
            if answer.ended {
                return Ok(());
            }
        }
    }
    // A server that closes after saying why the model stopped has answered
    // in full, end marker or not.
    if answer.stop_reason.is_some() {
        Ok(())
    } else {
        Err(AttemptError::Cut(String::new()))
    }
}

async fn read_error_body(response: &mut reqwest::Response, idle: Duration) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(idle, response.chunk()).await {
            Ok(Ok(Some(chunk))) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The human message in an API's error object: `{"error": {"message": ..}}`
/// (OpenAI, Anthropic), `{"message": ..}` (vLLM), `{"error": ".."}` (Ollama),
/// `{"detail": ..}` (`FastAPI` servers).
pub fn error_message(v: &serde_json::Value) -> Option<String> {
    ["/error/message", "/message", "/error", "/detail"]
        .iter()
        .find_map(|p| v.pointer(p).and_then(serde_json::Value::as_str))
        .map(str::to_string)
}

/// `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as a date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|t| t.trim().parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = text("retry-after")?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The wait before retry `attempt` (1-based): doubling from
/// [`FIRST_BACKOFF`], capped, and shortened by up to a quarter at random
/// so that parallel instances hit by one outage do not retry in step.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let full = FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    #[expect(
        clippy::cast_precision_loss,
        reason = "a jitter factor needs no precision"
    )]
    let jitter = (random % 1000) as f64 / 4000.0;
    full.mul_f64(1.0 - jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut past = reqwest::header::HeaderMap::new();
        past.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_at_most_a_quarter_off() {
        for (attempt, full) in [(1, 500), (2, 1000), (3, 2000), (5, 8000), (40, 8000)] {
            let ms = backoff(attempt).as_millis();
            assert!(ms <= full && ms >= full * 3 / 4, "{attempt}: {ms}");
        }
    }

    #[test]
    fn which_failures_are_retried() {
        let status = |n: u16| AttemptError::Status {
            status: StatusCode::from_u16(n).unwrap(),
            message: String::new(),
            retry_after: None,
        };
        for n in [408, 409, 429, 500, 502, 503, 529] {
            assert!(status(n).transient(), "{n}");
        }
        for n in [400, 401, 403, 404, 422] {
            assert!(!status(n).transient(), "{n}");
        }
        assert!(AttemptError::Cut(String::new()).transient());
        assert!(!AttemptError::Protocol(String::new()).transient());
    }

    #[test]
    fn specs_need_a_model_and_default_their_url_and_key() {
        let s = HttpSpec::new(AgentKind::Anthropic, None, Some("claude-x"), None)
            .unwrap()
            .unwrap();
        assert_eq!(s.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(s.key_var, "ANTHROPIC_API_KEY");
        let s = HttpSpec::new(
            AgentKind::Openai,
            Some("http://127.0.0.1:11434/v1"),
            Some("qwen"),
            Some("LOCAL_KEY"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.url, "http://127.0.0.1:11434/v1/chat/completions");
        assert_eq!(s.key_var, "LOCAL_KEY");
        let e = HttpSpec::new(AgentKind::Openai, None, None, None).unwrap_err();
        assert!(e.contains("needs a `model`"), "{e}");
        assert!(
            HttpSpec::new(AgentKind::Codex, None, None, None)
                .unwrap()
                .is_none()
        );
    }
}
