//! Owns one attempt of an HTTP agent's call: the request, the status and
//! error body of a refusal, the stream read into an [`Answer`] as it
//! comes (each delta written to the run's stdout file), and which failures
//! are worth another attempt, after how long.

use std::time::Duration;

use reqwest::StatusCode;

use super::reply::{Answer, EventError, error_message};
use super::spec::{HttpSpec, Wire};
use super::{anthropic, openai, sse};

/// First retry delay; it doubles per retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Error bodies are read this far: enough for any API's message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
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
    InStream(EventError),
    #[error("{0}")]
    Protocol(String),
}

impl AttemptError {
    /// Worth another try: the same request may well succeed.
    pub(super) fn transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
            }
            Self::Protocol(_) => false,
            _ => true,
        }
    }

    pub(super) fn from_reqwest(e: &reqwest::Error) -> Self {
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

/// One request and its stream, into `answer`; `out` is given each piece
/// of text as it arrives.
pub(super) async fn once(
    client: &reqwest::Client,
    spec: &HttpSpec,
    key: &str,
    body: &str,
    idle: Duration,
    answer: &mut Answer,
    out: &mut (dyn FnMut(&str) + Send),
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
    if status.is_redirection() {
        let to = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nowhere said")
            .to_string();
        return Err(AttemptError::Status {
            status,
            message: format!(
                "the server redirected to {to}; conductor follows no redirect with an API key: set `base_url` to where it points if that is right"
            ),
            retry_after: None,
        });
    }
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
                out(&delta);
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

/// `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as a date.
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
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
pub(super) fn backoff(attempt: u32) -> Duration {
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
}
