//! A scripted model server for the tests that drive real agent CLIs (and
//! HTTP agents): one 127.0.0.1 port, on its own threads, speaking the four
//! wire protocols those clients use, streamed as server-sent events the way
//! the pinned versions of those clients expect them: Anthropic Messages
//! (`/v1/messages`), OpenAI Responses (`/v1/responses`), OpenAI Chat
//! Completions (`/v1/chat/completions`) and Gemini
//! (`/v1beta/models/<m>:streamGenerateContent`, plus `:generateContent`
//! for the Gemini CLI's model router).
//!
//! A test scripts a queue of [`Turn`]s: each model call takes the next one
//! (a text answer, a call of the client's shell tool, an HTTP error, a
//! stream cut after its first event, or one that stalls after it until the
//! client hangs up), and the last turn is repeated once
//! the queue runs dry, so `[error]` means "always fail". Side requests a
//! CLI makes on its own (a title, a router call) do not use up a text or
//! shell turn: a request that offers no shell tool while a shell turn is
//! due, or a non-streaming call, gets a short harmless answer instead.
//! Errors, cuts and stalls hit every request. Every reply reports
//! [`INPUT_TOKENS`]/[`OUTPUT_TOKENS`], and every request is recorded.
//!
//! HTTP/1.1 by hand: one request per connection, answered with
//! `Connection: close`, so a stream ends where the connection does.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// Input tokens every reply reports.
pub(crate) const INPUT_TOKENS: u64 = 1000;
/// Output tokens every reply reports.
pub(crate) const OUTPUT_TOKENS: u64 = 50;

/// One scripted model call.
#[derive(Debug, Clone)]
pub(crate) enum Turn {
    /// A final text answer.
    Text(String),
    /// One call of the client's shell tool running this command.
    Shell(String),
    /// An HTTP error in the provider's error format.
    Error {
        status: u16,
        retry_after: Option<String>,
    },
    /// A 200 stream closed after its first event.
    Cut,
    /// A 200 stream that sends its first event, then nothing, until the
    /// client closes the connection (or 30 s pass).
    Stall,
    /// A 307 to this URL.
    Redirect(String),
}

impl Turn {
    pub(crate) fn text(t: &str) -> Self {
        Self::Text(t.to_string())
    }

    pub(crate) fn shell(cmd: &str) -> Self {
        Self::Shell(cmd.to_string())
    }

    pub(crate) fn error(status: u16) -> Self {
        Self::Error {
            status,
            retry_after: None,
        }
    }
}

/// A request the server got, and what it answered.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// `text`, `shell`, `error <status>`, `cut`, `stall`, `redirect`, `side` or
    /// `unknown`.
    pub action: String,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct State {
    turns: VecDeque<Turn>,
    requests: Vec<Request>,
    ids: u64,
}

/// The server; it stops when dropped.
#[derive(Debug)]
pub(crate) struct ModelServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ModelServer {
    /// A server that plays `turns` in order, repeating the last.
    pub(crate) fn start(turns: impl IntoIterator<Item = Turn>) -> Self {
        let turns: VecDeque<Turn> = turns.into_iter().collect();
        assert!(!turns.is_empty(), "script at least one turn");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            turns,
            requests: Vec::new(),
            ids: 0,
        }));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stopping = Arc::clone(&stopping);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || serve(conn, &state));
                }
            })
        };
        Self {
            addr,
            state,
            stopping,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests answered with a scripted model turn (not side requests).
    pub(crate) fn model_calls(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.action != "side" && r.action != "unknown")
            .collect()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The wire protocol a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Protocol {
    Anthropic,
    Responses,
    Chat,
    GeminiStream,
    GeminiOnce,
}

fn protocol(path: &str) -> Option<Protocol> {
    let path = path.split('?').next().unwrap_or_default();
    if path.ends_with(":streamGenerateContent") {
        Some(Protocol::GeminiStream)
    } else if path.ends_with(":generateContent") {
        Some(Protocol::GeminiOnce)
    } else if path.ends_with("/messages") {
        Some(Protocol::Anthropic)
    } else if path.ends_with("/responses") {
        Some(Protocol::Responses)
    } else if path.ends_with("/chat/completions") {
        Some(Protocol::Chat)
    } else {
        None
    }
}

fn serve(mut conn: TcpStream, state: &Mutex<State>) {
    // A client that connects and never sends must not pin a thread forever.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((method, path, headers, raw)) = read_request(&conn) else {
        return;
    };
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let proto = protocol(&path);
    let reply = {
        let mut st = state.lock().unwrap();
        st.ids += 1;
        let id = st.ids;
        let (action, reply) = match proto {
            None => ("unknown".to_string(), Reply::status(404, None, json!({}))),
            Some(p) => {
                let shell = shell_tool(p, &body);
                let head = st.turns.front().cloned().unwrap_or_else(|| Turn::text(""));
                let side = match head {
                    Turn::Error { .. } | Turn::Cut | Turn::Stall | Turn::Redirect(_) => false,
                    Turn::Shell(_) => shell.is_none() || p == Protocol::GeminiOnce,
                    Turn::Text(_) => p == Protocol::GeminiOnce,
                };
                if side {
                    ("side".to_string(), side_reply(p, &body, id))
                } else {
                    if st.turns.len() > 1 {
                        st.turns.pop_front();
                    }
                    let model = model_of(p, &path, &body);
                    let action = match &head {
                        Turn::Text(_) => "text".to_string(),
                        Turn::Shell(_) => "shell".to_string(),
                        Turn::Error { status, .. } => format!("error {status}"),
                        Turn::Cut => "cut".to_string(),
                        Turn::Stall => "stall".to_string(),
                        Turn::Redirect(_) => "redirect".to_string(),
                    };
                    (
                        action,
                        reply_for(p, &body, &head, shell.as_ref(), &model, id),
                    )
                }
            }
        };
        st.requests.push(Request {
            method,
            path,
            headers,
            body,
            action,
        });
        reply
    };
    let _ = reply.write(&mut conn);
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

/// Reads one request: line, headers (names lower-cased), body by
/// Content-Length or chunked.
#[expect(
    clippy::type_complexity,
    reason = "method, path, headers and body, taken apart by the one caller"
)]
fn read_request(conn: &TcpStream) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some((method, path, headers, body))
}

/// How the client's shell tool is called: its name and how a command
/// becomes its arguments.
#[derive(Debug)]
struct ShellTool {
    name: String,
    args: fn(&str) -> Value,
}

/// The shell tool the request offers, if any: claude's `Bash`, gemini's
/// `run_shell_command`, a Responses or Chat Completions client's `shell`,
/// `shell_command`, `exec_command` or `bash`.
fn shell_tool(p: Protocol, body: &Value) -> Option<ShellTool> {
    let tools = body.get("tools").and_then(Value::as_array)?;
    let described = |cmd: &str| json!({"command": cmd, "description": "Run the scripted command"});
    match p {
        Protocol::Anthropic => tools
            .iter()
            .any(|t| t["name"] == "Bash")
            .then(|| ShellTool {
                name: "Bash".into(),
                args: described,
            }),
        Protocol::GeminiStream | Protocol::GeminiOnce => tools
            .iter()
            .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
            .flatten()
            .any(|f| f["name"] == "run_shell_command")
            .then(|| ShellTool {
                name: "run_shell_command".into(),
                args: described,
            }),
        Protocol::Responses | Protocol::Chat => {
            // Responses tools are flat; Chat Completions nest them under `function`.
            let (name, params) = tools.iter().find_map(|t| {
                let f = t.get("function").unwrap_or(t);
                let name = f["name"].as_str()?;
                matches!(name, "exec_command" | "shell" | "shell_command" | "bash")
                    .then(|| (name.to_string(), f["parameters"].clone()))
            })?;
            let props = &params["properties"];
            let args: fn(&str) -> Value = if props.get("cmd").is_some() {
                |cmd| json!({"cmd": cmd})
            } else if props["command"]["type"] == "array" {
                |cmd| json!({"command": ["bash", "-lc", cmd]})
            } else {
                |cmd| json!({"command": cmd})
            };
            Some(ShellTool { name, args })
        }
    }
}

fn model_of(p: Protocol, path: &str, body: &Value) -> String {
    match p {
        Protocol::GeminiStream | Protocol::GeminiOnce => path
            .split("/models/")
            .nth(1)
            .and_then(|m| m.split(':').next())
            .unwrap_or("gemini")
            .to_string(),
        _ => body["model"].as_str().unwrap_or("scripted").to_string(),
    }
}

/// An HTTP reply: a status with a JSON body, or a 200 event stream.
#[derive(Debug)]
enum Reply {
    Status {
        status: u16,
        retry_after: Option<String>,
        body: Value,
    },
    /// SSE events, each already framed; `cut` closes after the first,
    /// `stall` holds the connection open after the first.
    Stream {
        events: Vec<String>,
        cut: bool,
        stall: bool,
    },
    /// The connection closed with no reply (a cut non-streaming call).
    Hangup,
    /// A 307 to this URL.
    Redirect(String),
}

impl Reply {
    fn status(status: u16, retry_after: Option<String>, body: Value) -> Self {
        Self::Status {
            status,
            retry_after,
            body,
        }
    }

    fn write(&self, w: &mut TcpStream) -> std::io::Result<()> {
        match self {
            Self::Status {
                status,
                retry_after,
                body,
            } => {
                let body = body.to_string();
                let retry = retry_after
                    .as_ref()
                    .map(|r| format!("Retry-After: {r}\r\n"))
                    .unwrap_or_default();
                write!(
                    w,
                    "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{body}",
                    reason(*status),
                    body.len()
                )?;
            }
            Self::Hangup => {}
            Self::Redirect(to) => write!(
                w,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?,
            Self::Stream { events, cut, stall } => {
                w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
                )?;
                let n = if *cut || *stall { 1 } else { events.len() };
                for e in &events[..n] {
                    w.write_all(e.as_bytes())?;
                    w.flush()?;
                }
                if *stall {
                    // Returns when the client hangs up (or the read timeout passes).
                    let _ = w.read(&mut [0; 64]);
                }
            }
        }
        w.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// `event:` + `data:` framing (Anthropic, Responses).
fn named(e: &Value) -> String {
    format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or(""))
}

/// `data:` only framing (Chat Completions, Gemini).
fn data(e: &Value) -> String {
    format!("data: {e}\n\n")
}

/// Splits text in two at a char boundary, so answers arrive as two deltas.
fn halves(t: &str) -> (&str, &str) {
    let mut at = t.len() / 2;
    while !t.is_char_boundary(at) {
        at += 1;
    }
    t.split_at(at)
}

/// What answers a side request: short text, or JSON where a schema asks for it.
fn side_reply(p: Protocol, body: &Value, id: u64) -> Reply {
    let text = if body["generationConfig"].get("responseJsonSchema").is_some() {
        json!({"complexity_reasoning": "scripted", "complexity_score": 10}).to_string()
    } else {
        "scripted side answer".to_string()
    };
    reply_for(p, body, &Turn::Text(text), None, "side", id)
}

/// One answer in both shapes: the SSE events of a stream, and the single
/// JSON object a non-streaming call gets.
#[derive(Debug)]
struct Answer {
    events: Vec<String>,
    whole: Value,
}

fn reply_for(
    p: Protocol,
    body: &Value,
    turn: &Turn,
    shell: Option<&ShellTool>,
    model: &str,
    id: u64,
) -> Reply {
    let (text, call) = match turn {
        Turn::Error {
            status,
            retry_after,
        } => return Reply::status(*status, retry_after.clone(), error_body(p, *status)),
        Turn::Redirect(to) => return Reply::Redirect(to.clone()),
        Turn::Text(t) => (t.clone(), None),
        Turn::Cut | Turn::Stall => ("partial answer, cut".to_string(), None),
        Turn::Shell(cmd) => {
            let tool = shell.expect("a shell turn is only played when a shell tool is offered");
            (String::new(), Some((tool.name.clone(), (tool.args)(cmd))))
        }
    };
    let answer = match p {
        Protocol::Anthropic => anthropic(&text, call, model, id),
        Protocol::Responses => responses(&text, call, model, id),
        Protocol::Chat => chat(&text, call, model, id),
        Protocol::GeminiStream | Protocol::GeminiOnce => gemini(&text, call, model),
    };
    // Claude retries a cut stream with a non-streaming call of the same request.
    let streaming = match p {
        Protocol::GeminiStream => true,
        Protocol::GeminiOnce => false,
        _ => body["stream"] == true,
    };
    match (streaming, turn) {
        (true, _) => Reply::Stream {
            events: answer.events,
            cut: matches!(turn, Turn::Cut),
            stall: matches!(turn, Turn::Stall),
        },
        (false, Turn::Cut | Turn::Stall) => Reply::Hangup,
        (false, _) => Reply::status(200, None, answer.whole),
    }
}

fn error_body(p: Protocol, status: u16) -> Value {
    let message = format!("scripted failure {status}");
    match p {
        Protocol::Anthropic => {
            let kind = match status {
                429 => "rate_limit_error",
                400..=499 => "invalid_request_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        Protocol::Responses | Protocol::Chat => {
            let (kind, code) = match status {
                429 => ("requests", json!("rate_limit_exceeded")),
                400..=499 => ("invalid_request_error", Value::Null),
                _ => ("server_error", Value::Null),
            };
            json!({"error": {"message": message, "type": kind, "code": code}})
        }
        Protocol::GeminiStream | Protocol::GeminiOnce => {
            let kind = match status {
                429 => "RESOURCE_EXHAUSTED",
                400..=499 => "INVALID_ARGUMENT",
                _ => "INTERNAL",
            };
            json!({"error": {"code": status, "message": message, "status": kind}})
        }
    }
}

fn anthropic(text: &str, call: Option<(String, Value)>, model: &str, id: u64) -> Answer {
    let mut message = json!({"id": format!("msg_{id}"), "type": "message", "role": "assistant",
        "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}});
    let mut ev = vec![json!({"type": "message_start", "message": message.clone()})];
    let (block, stop) = if let Some((name, input)) = call {
        let json_text = input.to_string();
        let (a, b) = halves(&json_text);
        ev.push(
            json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": {}}}),
        );
        for part in [a, b] {
            ev.push(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": part}}));
        }
        (
            json!({"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": input}),
            "tool_use",
        )
    } else {
        let (a, b) = halves(text);
        ev.push(json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}));
        for part in [a, b] {
            ev.push(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": part}}));
        }
        (json!({"type": "text", "text": text}), "end_turn")
    };
    ev.push(json!({"type": "content_block_stop", "index": 0}));
    ev.push(json!({"type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS}}));
    ev.push(json!({"type": "message_stop"}));
    message["content"] = json!([block]);
    message["stop_reason"] = json!(stop);
    message["usage"]["output_tokens"] = json!(OUTPUT_TOKENS);
    Answer {
        events: ev.iter().map(named).collect(),
        whole: message,
    }
}

fn responses(text: &str, call: Option<(String, Value)>, model: &str, id: u64) -> Answer {
    let item = match call {
        Some((name, args)) => json!({"type": "function_call", "id": format!("fc_{id}"),
            "call_id": format!("call_{id}"), "name": name, "arguments": args.to_string(),
            "status": "completed"}),
        None => json!({"type": "message", "id": format!("msg_{id}"), "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}),
    };
    let response = |status: &str, output: Value| {
        json!({"id": format!("resp_{id}"), "object": "response", "status": status,
            "model": model, "output": output})
    };
    let mut done = response("completed", json!([item.clone()]));
    done["usage"] = json!({"input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0}, "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS});
    let events = [
        json!({"type": "response.created", "response": response("in_progress", json!([]))}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        json!({"type": "response.completed", "response": done.clone()}),
    ]
    .iter()
    .map(named)
    .collect();
    Answer {
        events,
        whole: done,
    }
}

fn chat(text: &str, call: Option<(String, Value)>, model: &str, id: u64) -> Answer {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion.chunk",
            "created": 0, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let usage = json!({"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS});
    let mut ev = Vec::new();
    let (message, finish) = if let Some((name, args)) = call {
        let calls = json!([{"index": 0, "id": format!("call_{id}"), "type": "function",
            "function": {"name": name, "arguments": args.to_string()}}]);
        ev.push(chunk(
            json!({"role": "assistant", "tool_calls": calls.clone()}),
            Value::Null,
        ));
        (
            json!({"role": "assistant", "content": null, "tool_calls": calls}),
            "tool_calls",
        )
    } else {
        let (a, b) = halves(text);
        ev.push(chunk(
            json!({"role": "assistant", "content": a}),
            Value::Null,
        ));
        ev.push(chunk(json!({"content": b}), Value::Null));
        (json!({"role": "assistant", "content": text}), "stop")
    };
    ev.push(chunk(json!({}), json!(finish)));
    let mut last = chunk(json!({}), Value::Null);
    last["choices"] = json!([]);
    last["usage"] = usage.clone();
    ev.push(last);
    let mut events: Vec<String> = ev.iter().map(data).collect();
    events.push("data: [DONE]\n\n".to_string());
    let whole = json!({"id": format!("chatcmpl-{id}"), "object": "chat.completion",
        "created": 0, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage});
    Answer { events, whole }
}

/// Gemini chunks (`GenerateContentResponse` objects); the last one carries
/// the finish reason and usage. The whole answer is the chunks merged.
fn gemini(text: &str, call: Option<(String, Value)>, model: &str) -> Answer {
    let chunk = |parts: Value| {
        json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
            "modelVersion": model})
    };
    let (mut chunks, parts) = match call {
        Some((name, args)) => {
            let parts = json!([{"functionCall": {"name": name, "args": args}}]);
            (vec![chunk(parts.clone())], parts)
        }
        None => {
            let (a, b) = halves(text);
            (
                vec![chunk(json!([{"text": a}])), chunk(json!([{"text": b}]))],
                json!([{"text": text}]),
            )
        }
    };
    if let Some(last) = chunks.last_mut() {
        last["candidates"][0]["finishReason"] = json!("STOP");
        last["usageMetadata"] = json!({"promptTokenCount": INPUT_TOKENS,
            "candidatesTokenCount": OUTPUT_TOKENS,
            "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS});
    }
    let mut whole = chunks.last().cloned().unwrap_or(Value::Null);
    whole["candidates"][0]["content"]["parts"] = parts;
    Answer {
        events: chunks.iter().map(data).collect(),
        whole,
    }
}

// The server's own tests: a raw HTTP/1.1 client checks each protocol's
// framing and the script's rules, so a CLI test that fails points at the
// CLI or the engine rather than at this server.

/// Status, headers and body of one POST.
fn post(server: &ModelServer, path: &str, body: &Value) -> (u16, String, String) {
    let mut conn = TcpStream::connect(server.addr).unwrap();
    let body = body.to_string();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    // A cut non-streaming call gets no reply at all.
    let Some((head, body)) = reply.split_once("\r\n\r\n") else {
        return (0, String::new(), reply);
    };
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// The JSON of every `data:` line of an SSE body.
fn events(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn anthropic_plays_the_shell_call_then_the_text_and_records_both() {
    let server = ModelServer::start([Turn::shell("touch x"), Turn::text("all done")]);
    let ask = json!({"model": "m", "stream": true, "tools": [{"name": "Bash"}], "messages": []});
    let (status, _, body) = post(&server, "/v1/messages?beta=true", &ask);
    assert_eq!(status, 200);
    let ev = events(&body);
    assert_eq!(ev[1]["content_block"]["type"], "tool_use");
    let input: String = ev
        .iter()
        .filter_map(|e| e["delta"]["partial_json"].as_str())
        .collect();
    let input: Value = serde_json::from_str(&input).unwrap();
    assert_eq!(input["command"], "touch x");
    assert_eq!(ev.last().unwrap()["type"], "message_stop");

    let (_, _, body) = post(&server, "/v1/messages?beta=true", &ask);
    let text: String = events(&body)
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "all done");
    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/v1/messages?beta=true")
    );
    assert_eq!(
        [seen[0].action.as_str(), seen[1].action.as_str()],
        ["shell", "text"]
    );
}

#[test]
fn openai_shell_calls_take_the_argument_shape_of_the_offered_tool() {
    let server = ModelServer::start([Turn::shell("ls"), Turn::shell("ls"), Turn::text("ok")]);
    let responses = json!({"model": "m", "stream": true, "tools": [{"type": "function", "name": "exec_command",
        "parameters": {"properties": {"cmd": {"type": "string"}}}}]});
    let (_, _, body) = post(&server, "/v1/responses", &responses);
    let ev = events(&body);
    let item = &ev[1]["item"];
    assert_eq!(item["name"], "exec_command");
    assert_eq!(item["arguments"], json!({"cmd": "ls"}).to_string());
    assert_eq!(
        ev[2]["response"]["usage"]["input_tokens"], INPUT_TOKENS,
        "{ev:#?}"
    );

    let chat = json!({"model": "m", "stream": true, "tools": [{"type": "function", "function": {"name": "shell",
        "parameters": {"properties": {"command": {"type": "array"}}}}}]});
    let (_, _, body) = post(&server, "/v1/chat/completions", &chat);
    let call = &events(&body)[0]["choices"][0]["delta"]["tool_calls"][0]["function"];
    assert_eq!(
        call["arguments"],
        json!({"command": ["bash", "-lc", "ls"]}).to_string()
    );
    let (_, _, body) = post(
        &server,
        "/v1/chat/completions",
        &json!({"model": "m", "stream": true}),
    );
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let ev = events(&body);
    let text: String = ev
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "ok");
    assert_eq!(
        ev.last().unwrap()["usage"]["completion_tokens"],
        OUTPUT_TOKENS
    );
}

#[test]
fn gemini_router_calls_are_side_requests_that_use_up_no_turn() {
    let server = ModelServer::start([Turn::shell("ls"), Turn::text("ok")]);
    let router = json!({"generationConfig": {"responseJsonSchema": {}}});
    let (status, _, body) = post(&server, "/v1beta/models/lite:generateContent", &router);
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&body).unwrap();
    let text = answer["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect::<String>();
    assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");

    let main = json!({"tools": [{"functionDeclarations": [{"name": "run_shell_command"}]}]});
    let path = "/v1beta/models/flash:streamGenerateContent?alt=sse";
    let (_, _, body) = post(&server, path, &main);
    let ev = events(&body);
    assert_eq!(
        ev[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]["command"],
        "ls"
    );
    assert_eq!(ev[0]["usageMetadata"]["promptTokenCount"], INPUT_TOKENS);
    let (_, _, body) = post(&server, path, &main);
    assert_eq!(events(&body).len(), 2, "text comes as two chunks");
    let actions: Vec<String> = server.requests().into_iter().map(|r| r.action).collect();
    assert_eq!(actions, ["side", "shell", "text"]);
    assert_eq!(server.model_calls().len(), 2);
}

#[test]
fn a_cut_stream_stops_after_one_event_and_the_last_turn_repeats() {
    let server = ModelServer::start([
        Turn::Cut,
        Turn::Error {
            status: 429,
            retry_after: Some("3".into()),
        },
    ]);
    let ask = json!({"model": "m", "stream": true, "messages": []});
    let (status, _, body) = post(&server, "/v1/messages", &ask);
    assert_eq!(status, 200);
    assert_eq!(events(&body).len(), 1, "{body}");
    for _ in 0..2 {
        let (status, head, body) = post(&server, "/v1/messages", &ask);
        assert_eq!(status, 429);
        assert!(head.contains("Retry-After: 3"), "{head}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }
    let (status, _, _) = post(&server, "/nowhere", &ask);
    assert_eq!(status, 404);
}

#[test]
fn a_call_without_stream_gets_one_json_object_or_a_closed_connection() {
    let server = ModelServer::start([Turn::Cut, Turn::shell("ls"), Turn::text("ok")]);
    let ask = json!({"model": "m", "tools": [{"name": "Bash"}], "messages": []});
    assert_eq!(
        post(&server, "/v1/messages", &ask),
        (0, String::new(), String::new())
    );
    let (status, head, body) = post(&server, "/v1/messages", &ask);
    assert_eq!(status, 200);
    assert!(head.contains("application/json"), "{head}");
    let message: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["content"][0]["input"]["command"], "ls");
    assert_eq!(message["stop_reason"], "tool_use");
    let (_, _, body) = post(&server, "/v1/chat/completions", &json!({"model": "m"}));
    let completion: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "ok");
    assert_eq!(completion["usage"]["prompt_tokens"], INPUT_TOKENS);
}
