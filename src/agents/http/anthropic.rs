//! Owns the Anthropic Messages wire format, streamed: the request (`POST
//! {base_url}/v1/messages`, the `x-api-key` and `anthropic-version`
//! headers, the prompt as the one user message) and the reading of its
//! named events (`message_start`, `content_block_delta`, `message_delta`,
//! `message_stop`, `error`) into text deltas, usage and the end of the
//! answer.

use serde_json::{Value, json};

use super::reply::{Answer, EventError};
use super::sse::Event;

/// Where the `anthropic` kind goes when no `base_url` is set.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The API version the request and event shapes here follow.
const API_VERSION: &str = "2023-06-01";

/// The API requires a cap on the answer's length. 8,192 tokens fits every
/// current model and is far more than a final answer needs.
const MAX_TOKENS: u32 = 8192;

/// `base_url` names the host, as `ANTHROPIC_BASE_URL` does for the SDKs
/// and the claude CLI; one that already ends in `/v1` is taken as written.
pub(crate) fn endpoint(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/messages")
    } else {
        format!("{base}/v1/messages")
    }
}

pub(crate) fn body(model: &str, prompt: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": prompt}],
        "stream": true,
    })
}

pub(crate) fn authorize(request: reqwest::RequestBuilder, key: &str) -> reqwest::RequestBuilder {
    let mut value = reqwest::header::HeaderValue::from_str(key)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
    // Kept out of debug output, as `bearer_auth` does for OpenAI's header.
    value.set_sensitive(true);
    request
        .header("x-api-key", value)
        .header("anthropic-version", API_VERSION)
}

fn tokens(usage: &Value, keys: &[&str]) -> Option<u64> {
    let found: Vec<u64> = keys
        .iter()
        .filter_map(|k| usage.get(*k).and_then(Value::as_u64))
        .collect();
    (!found.is_empty()).then(|| crate::agents::usage::sum_tokens(found))
}

/// Every input token is billed, cached ones included.
const INPUT_KEYS: &[&str] = &[
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
];

/// Folds one event into `answer`; the text it adds, or the error it carries.
pub(crate) fn event(answer: &mut Answer, event: &Event) -> Result<Option<String>, EventError> {
    let data: Value = serde_json::from_str(&event.data).map_err(|source| EventError::NotJson {
        what: "an event",
        source,
    })?;
    // The data's `type` repeats the event name; proxies sometimes drop the name.
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(&event.name);
    match kind {
        "message_start" => {
            if let Some(usage) = data.pointer("/message/usage") {
                answer.input_tokens = tokens(usage, INPUT_KEYS);
                answer.output_tokens = tokens(usage, &["output_tokens"]);
            }
        }
        "content_block_delta" if data.pointer("/delta/type") == Some(&json!("text_delta")) => {
            return Ok(data
                .pointer("/delta/text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string));
        }
        "message_delta" => {
            if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                answer.stop_reason = Some(reason.to_string());
            }
            // Counts here are cumulative, so they replace message_start's.
            if let Some(usage) = data.get("usage") {
                if let Some(n) = tokens(usage, INPUT_KEYS) {
                    answer.input_tokens = Some(n);
                }
                if let Some(n) = tokens(usage, &["output_tokens"]) {
                    answer.output_tokens = Some(n);
                }
            }
        }
        "message_stop" => answer.ended = true,
        "error" => {
            let error = data.get("error").unwrap_or(&data);
            return Err(EventError::server(error));
        }
        _ => {}
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str, data: &str) -> Event {
        Event {
            name: name.to_string(),
            data: data.to_string(),
        }
    }

    #[test]
    fn events_give_text_usage_and_the_end() {
        let mut a = Answer::default();
        let events = [
            named(
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            ),
            named("ping", r#"{"type":"ping"}"#),
            named(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            named(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi "}}"#,
            ),
            named(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"there"}}"#,
            ),
            named(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#,
            ),
            named("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let text: String = events
            .iter()
            .filter_map(|e| event(&mut a, e).unwrap())
            .collect();
        assert_eq!(text, "Hi there");
        assert_eq!((a.input_tokens, a.output_tokens), (Some(15), Some(7)));
        assert_eq!(a.stop_reason.as_deref(), Some("end_turn"));
        assert!(a.ended);
    }

    #[test]
    fn an_error_event_is_an_error_and_endpoints_take_either_base() {
        let mut a = Answer::default();
        let e = event(
            &mut a,
            &named(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        );
        assert_eq!(e.unwrap_err().to_string(), "Overloaded");
        assert_eq!(
            endpoint("https://api.anthropic.com"),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9/v1/"),
            "http://127.0.0.1:9/v1/messages"
        );
    }
}
