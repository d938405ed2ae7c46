//! Owns what one attempt's reply has said so far, as both wire formats
//! fill it in (text, usage, why the model stopped, whether the end marker
//! came), and the errors a stream can carry.

/// What one attempt's stream has said so far.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub(crate) text: String,
    pub(crate) input_tokens: Option<u64>,
    pub(crate) output_tokens: Option<u64>,
    /// Why the model stopped (`finish_reason`, `stop_reason`), once it said.
    pub(crate) stop_reason: Option<String>,
    /// The stream's end marker (`[DONE]`, `message_stop`) arrived.
    pub(crate) ended: bool,
}

/// An event that ends the attempt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EventError {
    #[error("the server sent {what} that is not JSON ({source})")]
    NotJson {
        /// "a chunk", "an event": what the wire format calls it.
        what: &'static str,
        source: serde_json::Error,
    },
    /// The server reported an error in the stream, in its own words.
    #[error("{0}")]
    Server(String),
}

impl EventError {
    /// The error object's human message, else the object itself.
    pub(crate) fn server(error: &serde_json::Value) -> Self {
        Self::Server(error_message(error).unwrap_or_else(|| error.to_string()))
    }
}

/// The human message in an API's error object: `{"error": {"message": ...}}`
/// (OpenAI, Anthropic), `{"message": ...}` (vLLM), `{"error": "..."}` (Ollama),
/// `{"detail": ...}` (`FastAPI` servers).
pub(crate) fn error_message(v: &serde_json::Value) -> Option<String> {
    ["/error/message", "/message", "/error", "/detail"]
        .iter()
        .find_map(|p| v.pointer(p).and_then(serde_json::Value::as_str))
        .map(str::to_string)
}
