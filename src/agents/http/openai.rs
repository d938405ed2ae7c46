//! Owns the OpenAI Chat Completions wire format, streamed: the request
//! (`POST {base_url}/chat/completions`, a bearer key, the prompt as the one
//! user message, usage asked for in the stream) and the reading of its
//! `data:` chunks into text deltas, usage and the end of the answer. Every
//! OpenAI-compatible server (xAI, `OpenRouter`, Perplexity, Ollama, vLLM,
//! llama.cpp) speaks it, so nothing here is vendor-specific.

use serde_json::{Value, json};

use super::reply::{Answer, EventError};
use super::sse::Event;

/// Where the `openai` kind goes when no `base_url` is set.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// `base_url` names the API root, `/v1` included, as OpenAI's own SDKs take it.
pub(crate) fn endpoint(base_url: &str) -> String {
    format!("{}/chat/completions", base_url.trim_end_matches('/'))
}

pub(crate) fn body(model: &str, prompt: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": true,
        // Without it a stream carries no usage, and budgets would see none.
        "stream_options": {"include_usage": true},
    })
}

pub(crate) fn authorize(request: reqwest::RequestBuilder, key: &str) -> reqwest::RequestBuilder {
    // `bearer_auth` marks the header sensitive, so it never shows in debug output.
    request.bearer_auth(key)
}

/// Folds one chunk into `answer`; the text it adds, or the error it carries.
pub(crate) fn event(answer: &mut Answer, event: &Event) -> Result<Option<String>, EventError> {
    if event.data.trim() == "[DONE]" {
        answer.ended = true;
        return Ok(None);
    }
    let chunk: Value = serde_json::from_str(&event.data).map_err(|source| EventError::NotJson {
        what: "a chunk",
        source,
    })?;
    if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
        return Err(EventError::server(error));
    }
    if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
        answer.input_tokens = usage.get("prompt_tokens").and_then(Value::as_u64);
        answer.output_tokens = usage.get("completion_tokens").and_then(Value::as_u64);
    }
    let Some(choice) = chunk.pointer("/choices/0") else {
        return Ok(None);
    };
    if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
        answer.stop_reason = Some(reason.to_string());
    }
    Ok(choice
        .pointer("/delta/content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(text: &str) -> Event {
        Event {
            name: String::new(),
            data: text.to_string(),
        }
    }

    #[test]
    fn chunks_give_text_usage_and_the_end() {
        let mut a = Answer::default();
        let chunks = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
            "[DONE]",
        ];
        let text: String = chunks
            .iter()
            .filter_map(|c| event(&mut a, &data(c)).unwrap())
            .collect();
        assert_eq!(text, "Hello");
        assert_eq!((a.input_tokens, a.output_tokens), (Some(12), Some(3)));
        assert_eq!(a.stop_reason.as_deref(), Some("stop"));
        assert!(a.ended);
        assert_eq!(
            endpoint("http://127.0.0.1:11434/v1/"),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
    }

    #[test]
    fn an_error_chunk_is_an_error() {
        let mut a = Answer::default();
        let e = event(
            &mut a,
            &data(r#"{"error":{"message":"overloaded","type":"server_error"}}"#),
        );
        assert_eq!(e.unwrap_err().to_string(), "overloaded");
        assert!(event(&mut a, &data("{not json")).is_err());
    }
}
