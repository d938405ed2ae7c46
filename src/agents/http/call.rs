//! Owns one iteration's call of an HTTP agent: the prompt as the user
//! message, attempts retried with backoff (honouring Retry-After) a bounded
//! number of times before the iteration's time is up, the text written to
//! agent-stdout.txt as it arrives and every failure and retry to
//! agent-stderr.txt, redacted. What was streamed is kept outside the
//! attempts, so a call that conductor cuts short (timeout, Ctrl-C, a
//! watch's re-plan: the runner's limits, not this module's) still reports
//! what it had.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::attempt::{AttemptError, backoff, once};
use super::reply::Answer;
use super::spec::{HttpSpec, Wire};
use super::{anthropic, openai};
use crate::agents::stream::StreamReport;
use crate::secrets::Redactor;

/// Calls per iteration: the first and four retries, as in OpenAI's and
/// Anthropic's SDKs' backoff but with two more tries, since an agent loop
/// loses more by failing an iteration than a chat does by a late reply.
const ATTEMPTS: u32 = 5;
/// A stream that sends nothing this long is taken for dead and retried,
/// when the node sets no `idle_timeout`. Long enough for a reasoning
/// model's silent thinking.
const DEFAULT_IDLE: Duration = Duration::from_mins(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How a call ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallEnd {
    /// The model answered in full.
    Answered,
    /// Transient failures past the retries, or no time left for the next
    /// attempt: the iteration failed, and the loop may try again.
    Failed,
    /// Refused for good (400, 401, 403, 404, no usable key): the node fails.
    Refused,
    /// The stream went silent for the node's own `idle_timeout`.
    Stalled,
}

/// Everything the call has produced.
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
                *total = Some(total.unwrap_or(0).saturating_add(n));
            }
        };
        add(&mut self.input_tokens, done.input_tokens);
        add(&mut self.output_tokens, done.output_tokens);
    }
}

/// The run's stdout and stderr files; everything written is redacted.
struct Files<'a> {
    stdout: File,
    stderr: File,
    redactor: &'a Redactor,
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

/// One iteration's call, from its files being opened to its report.
pub(crate) struct Call<'a> {
    spec: &'a HttpSpec,
    files: Files<'a>,
    state: State,
}

impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("url", &self.spec.url)
            .finish_non_exhaustive()
    }
}

impl<'a> Call<'a> {
    /// Opens the run's stdout and stderr files for the call.
    pub(crate) fn open(
        spec: &'a HttpSpec,
        stdout: &Path,
        stderr: &Path,
        redactor: &'a Redactor,
    ) -> std::io::Result<Self> {
        let append = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
        };
        Ok(Self {
            spec,
            files: Files {
                stdout: append(stdout)?,
                stderr: append(stderr)?,
                redactor,
            },
            state: State::default(),
        })
    }

    /// Makes the call: `key` as the agent's environment holds it, the
    /// node's `idle_timeout`, and `end`, when the iteration's time is up
    /// (no retry starts after it).
    pub(crate) async fn run(
        &mut self,
        key: Option<&str>,
        prompt: &str,
        idle_timeout: Option<Duration>,
        end: Instant,
    ) -> CallEnd {
        let Some(key) = key else {
            let why = format!("the API key variable {} is not set", self.spec.key_var);
            return self.refuse(why);
        };
        if reqwest::header::HeaderValue::from_str(key).is_err() {
            let why = format!(
                "the API key in {} holds characters an HTTP header cannot carry",
                self.spec.key_var
            );
            return self.refuse(why);
        }
        // No redirect is followed: the key travels in headers (`x-api-key`)
        // that a redirect to another host would carry along.
        let client = match reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => return self.refuse(format!("cannot set up an HTTP client: {e}")),
        };
        let body = match self.spec.wire {
            Wire::OpenAi => openai::body(&self.spec.model, prompt),
            Wire::Anthropic => anthropic::body(&self.spec.model, prompt),
        }
        .to_string();
        let idle = idle_timeout.unwrap_or(DEFAULT_IDLE);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.state.next_attempt();
            let files = &mut self.files;
            let error = match once(
                &client,
                self.spec,
                key,
                &body,
                idle,
                &mut self.state.current,
                &mut |delta| files.out(delta),
            )
            .await
            {
                Ok(()) => return CallEnd::Answered,
                Err(e) => e,
            };
            // A limit the node sets is a limit, not a glitch to retry.
            if matches!(error, AttemptError::Stalled(_)) && idle_timeout.is_some() {
                self.files.log(&error.to_string());
                return CallEnd::Stalled;
            }
            if !error.transient() {
                return self.refuse(error.to_string());
            }
            if attempt == ATTEMPTS {
                return self.fail(format!("gave up after {ATTEMPTS} attempts: {error}"));
            }
            let asked = match &error {
                AttemptError::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            let wait = asked.unwrap_or_else(|| backoff(attempt));
            if Instant::now() + wait >= end {
                return self.fail(format!(
                    "{error}; the next attempt would start in {:.1}s, after the iteration's time is up",
                    wait.as_secs_f64()
                ));
            }
            self.files.log(&format!(
                "attempt {attempt} of {ATTEMPTS}: {error}; retrying in {:.1}s{}",
                wait.as_secs_f64(),
                if asked.is_some() {
                    " (Retry-After)"
                } else {
                    ""
                }
            ));
            if !self.state.current.text.is_empty() {
                self.files
                    .out("\n[conductor: the stream broke off; the answer starts again]\n");
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Says in the run's stderr that conductor stopped the call, and why.
    pub(crate) fn stopped(&mut self, why: &str) {
        self.files
            .log(&format!("call stopped by conductor ({why})"));
    }

    /// What the call answered, what it used, and why it failed if it did.
    pub(crate) fn report(mut self) -> StreamReport {
        let text = std::mem::take(&mut self.state.current.text);
        self.state.next_attempt();
        let state = self.state;
        StreamReport {
            answer: Some(text),
            failed: state.failure.is_some(),
            error: state.failure,
            input_tokens: state.input_tokens,
            output_tokens: state.output_tokens,
            cost_usd: None,
        }
    }

    fn refuse(&mut self, why: String) -> CallEnd {
        self.files.log(&why);
        self.state.failure = Some(why);
        CallEnd::Refused
    }

    fn fail(&mut self, why: String) -> CallEnd {
        self.files.log(&why);
        self.state.failure = Some(why);
        CallEnd::Failed
    }
}
