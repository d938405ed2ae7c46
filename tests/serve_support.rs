//! A real `conductor serve` for the API and browser tests: started on a
//! free loopback port over a folder's runs root, its address read from
//! what it prints, stopped (Ctrl-C) when dropped; and a small HTTP client
//! over it, whose answers are never errors, so tests assert on statuses.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running server.
pub(crate) struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    agent: ureq::Agent,
}

/// One answer.
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Served {
    /// `conductor serve --bind 127.0.0.1:0 --root ROOT` with `extra` args
    /// and environment.
    pub(crate) fn start(root: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("conductor"))
            .args(["serve", "--bind", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("conductor serve says where it listens");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in: {line}"))
            .trim_end_matches('/')
            .to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self { child, base, agent }
    }

    /// The newest apply the overview lists (of the first project).
    pub(crate) fn latest_apply(&self) -> String {
        self.get("/api/v1/overview").json()["projects"][0]["applies"][0]["apply_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The task and first run of instance `key` of an apply.
    pub(crate) fn run_of(&self, project: &str, apply: &str, key: &str) -> (String, String) {
        let key: String = key
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let d = self
            .get(&format!(
                "/api/v1/projects/{project}/applies/{apply}/instances/{key}"
            ))
            .json();
        let task = d["instance"]["task_id"].as_str().unwrap().to_string();
        let run = d["iterations"][0]["run_id"].as_str().unwrap().to_string();
        (task, run)
    }

    /// What instance `key`'s first run printed.
    pub(crate) fn stdout_of(&self, project: &str, apply: &str, key: &str) -> String {
        let (task, run) = self.run_of(project, apply, key);
        self.get(&format!(
            "/api/v1/projects/{project}/tasks/{task}/runs/{run}/stdout"
        ))
        .body
    }

    /// The server's port.
    pub(crate) fn port(&self) -> &str {
        self.base.rsplit(':').next().unwrap()
    }

    fn answer(mut r: ureq::http::Response<ureq::Body>) -> Answer {
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        Answer {
            status: r.status().as_u16(),
            body: r.body_mut().read_to_string().unwrap_or_default(),
            headers,
        }
    }

    /// GET `path` with extra headers.
    pub(crate) fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::answer(req.call().unwrap())
    }

    pub(crate) fn get(&self, path: &str) -> Answer {
        self.get_with(path, &[])
    }

    /// POST `body` as JSON to `path` with extra headers.
    pub(crate) fn post_with(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::answer(req.send(body.to_string()).unwrap())
    }

    pub(crate) fn post(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.post_with(path, body, &[])
    }

    /// Follows a server-sent event stream: each event as (event, id,
    /// data), received until the server stops or the receiver is dropped.
    pub(crate) fn events(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> mpsc::Receiver<(String, String, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut req = agent.get(format!("{}{path}", self.base));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let (tx, rx) = mpsc::channel();
        let mut response = req.call().unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        std::thread::spawn(move || {
            let reader = BufReader::new(response.body_mut().as_reader());
            let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
            for line in reader.lines().map_while(Result::ok) {
                if line.is_empty() {
                    if !data.is_empty() || !event.is_empty() {
                        let e = (
                            std::mem::take(&mut event),
                            id.clone(),
                            std::mem::take(&mut data),
                        );
                        if tx.send(e).is_err() {
                            return;
                        }
                    }
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
        });
        rx
    }
}

/// The next event of `rx` that `want` accepts, within 20 s.
pub(crate) fn next_event(
    rx: &mpsc::Receiver<(String, String, String)>,
    what: &str,
    want: impl Fn(&str, &str, &str) -> bool,
) -> (String, String, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if want(&e.0, &e.1, &e.2) => return e,
            Ok(_) => {}
            Err(e) => panic!("no event: {what} ({e})"),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
