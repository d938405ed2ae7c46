//! `[notify]` webhooks against a real local receiver: every instance's end
//! and the apply's end posted as JSON, signed with HMAC-SHA256 of the body,
//! retried when the receiver fails, a final failure recorded on the project
//! bus without the URL's token; a missing secret and a bad URL refused
//! before anything runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use hmac::Mac;

use crate::test_builder::Test;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A receiver on a free port answering the first `fail` requests 500, the
/// rest 204; the requests it got.
fn receiver(fail: usize) -> (u16, Arc<Mutex<Vec<Got>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end().to_string();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let n = {
                let mut g = seen.lock().unwrap();
                g.push(Got {
                    path,
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                g.len()
            };
            let status = if n <= fail {
                "500 Internal Server Error"
            } else {
                "204 No Content"
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, got)
}

fn flow(port: u16) -> String {
    format!(
        r#"version = 1
name = "hooked"

[notify]
webhook = "http://127.0.0.1:{port}/hook?token=sekrit-token"
secret_env = "HOOK_SECRET"

[agents.sh]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; echo ok"]

[defaults]
agent = "sh"
stop = {{ exit_zero = true, max_iterations = 1 }}

[nodes.a]
prompt = "a"

[nodes.b]
needs = ["a"]
prompt = "b"
"#
    )
}

const SECRET: &str = "the-webhook-signing-secret";

fn signature(body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex = mac
        .finalize()
        .into_bytes()
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
            s
        });
    format!("sha256={hex}")
}

#[test]
fn each_end_is_posted_signed_and_a_failed_post_is_retried() {
    let (port, got) = receiver(1);
    let ran = Test::new()
        .workflow(flow(port))
        .env("HOOK_SECRET", SECRET)
        .apply()
        .run();
    let got = got.lock().unwrap().clone();
    // The first POST failed and was sent again, the same; deliveries run
    // side by side, so the others may come in between.
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(
        got.iter().filter(|g| g.body == got[0].body).count(),
        2,
        "the retry sends the same body"
    );
    let mut events: Vec<(String, String)> = got[1..]
        .iter()
        .map(|g| {
            let j = g.json();
            (
                j["event"].as_str().unwrap().to_string(),
                j["instance"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            ("apply.finished".to_string(), String::new()),
            ("instance.finished".to_string(), "a".to_string()),
            ("instance.finished".to_string(), "b".to_string()),
        ]
    );
    for g in &got {
        assert_eq!(g.path, "/hook?token=sekrit-token");
        assert_eq!(g.header("content-type"), Some("application/json"));
        assert_eq!(
            g.header("x-conductor-signature"),
            Some(signature(&g.body).as_str()),
            "signed with HMAC-SHA256 of the body"
        );
        assert!(!g.body.contains(SECRET));
    }
    let b = got
        .iter()
        .map(Got::json)
        .find(|j| j["instance"] == "b")
        .unwrap();
    assert_eq!(b["status"], "done");
    assert_eq!(b["stop_reason"], "exit_zero");
    assert_eq!(b["iterations"], 1);
    assert_eq!(b["workflow"], "hooked");
    assert_eq!(b["apply_id"], ran.json()["apply_id"]);
    let end = got
        .iter()
        .find(|g| g.header("x-conductor-event") == Some("apply.finished"))
        .unwrap()
        .json();
    assert_eq!(end["event"], "apply.finished");
    assert_eq!(end["status"], "done");
    assert_eq!(end["done"], 2);
    // The secret is never a byte of the run store.
    for (path, text) in ran.files() {
        assert!(
            !text.contains(SECRET),
            "{} holds the secret",
            path.display()
        );
    }
}

#[test]
fn a_webhook_that_keeps_failing_is_recorded_on_the_bus_without_its_token() {
    let (port, got) = receiver(usize::MAX);
    let ran = Test::new()
        .workflow(flow(port).replace("[nodes.b]\nneeds = [\"a\"]\nprompt = \"b\"\n", ""))
        .env("HOOK_SECRET", SECRET)
        .apply()
        .run();
    // Each of the two ends was tried three times.
    assert_eq!(got.lock().unwrap().len(), 6);
    let warns: Vec<serde_json::Value> = ran
        .project_records()
        .into_iter()
        .filter(|r| r["type"] == "WARN")
        .collect();
    assert_eq!(warns.len(), 2, "{warns:#?}");
    let body = warns[0]["body"].as_str().unwrap();
    assert!(
        body.contains("failed after 3 attempts") && body.contains("500"),
        "{body}"
    );
    assert!(body.contains("http://127.0.0.1:"), "{body}");
    assert!(!body.contains("/hook"), "nor its path: {body}");
    assert!(
        !body.contains("sekrit-token"),
        "the URL's query is not shown: {body}"
    );
}

#[test]
fn a_missing_secret_or_a_bad_url_is_refused_before_anything_runs() {
    let (port, got) = receiver(0);
    Test::new()
        .workflow(flow(port))
        .env_remove("HOOK_SECRET")
        .apply()
        .status(3)
        .stderr_has("the webhook secret variable HOOK_SECRET is not set")
        .stderr_has("export HOOK_SECRET")
        .run();
    assert!(got.lock().unwrap().is_empty());
    Test::new()
        .workflow(flow(port).replace("http://127.0.0.1", "ftp://127.0.0.1"))
        .env("HOOK_SECRET", SECRET)
        .apply()
        .status(2)
        .stderr_has("is not an http or https URL")
        .stderr_has("flow.toml:5:")
        .run();
    Test::new()
        .workflow(flow(port).replace(
            "secret_env = \"HOOK_SECRET\"",
            "secret_env = \"sk-live-123\"",
        ))
        .apply()
        .status(2)
        .stderr_has("is not an environment variable name")
        .run();
}
