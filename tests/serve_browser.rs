//! The web page in a real headless Chromium, driven over `WebDriver`
//! (chromedriver), against a real `conductor serve` on real applies: the
//! graph shows every instance and follows its state live, an instance page
//! shows its iterations and the live transcript, an answer composed on the
//! page reaches the agent, the stop button stops everything, and the start
//! form runs a workflow. Each test asserts on what the page shows.
//!
//! Ignored by a plain `cargo test` (they need Debian's `chromium` and
//! `chromium-driver`); `.ci/run` installs both and runs them. With
//! `CONDUCTOR_UI_SCREENSHOTS=DIR` they save the screenshots docs/ui.md shows.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::apply_support::{Flow, alive, wait_for};
use crate::serve_support::Served;

/// A headless Chromium under its own chromedriver.
struct Browser {
    driver: Child,
    client: Option<Client>,
    rt: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Self {
        let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("chromedriver is missing: install Debian's chromium and chromium-driver (.ci/run does)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-quic",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let mut builder = ClientBuilder::rustls().unwrap();
            builder.capabilities(caps.clone());
            match rt.block_on(builder.connect(&url)) {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("no WebDriver session: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        Self {
            driver,
            client: Some(client),
            rt,
            _profile: profile,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).unwrap();
    }

    /// Runs `script` (a function body) in the page.
    fn js(&self, script: &str) -> serde_json::Value {
        self.rt
            .block_on(self.c().execute(script, Vec::new()))
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits until `script` returns true in the page; fails saying `what`
    /// and what the page shows.
    fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.js(script) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let shown = self.js("return document.body.innerText");
        panic!(
            "the page never showed {what}; it shows:\n{}",
            shown.as_str().unwrap_or_default()
        );
    }

    /// The `data-state` of the graph's instance `key`.
    fn state_of(&self, key: &str) -> String {
        self.js(&format!(
            "const e = document.querySelector('#dag [data-instance=\"{key}\"]'); return e ? e.dataset.state : null"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    fn click(&self, css: &str) {
        let el = self
            .rt
            .block_on(
                self.c()
                    .wait()
                    .at_most(Duration::from_secs(20))
                    .for_element(Locator::Css(css)),
            )
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
        self.rt.block_on(el.click()).unwrap();
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self
            .rt
            .block_on(
                self.c()
                    .wait()
                    .at_most(Duration::from_secs(20))
                    .for_element(Locator::Css(css)),
            )
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
        self.rt.block_on(el.send_keys(text)).unwrap();
    }

    /// Saves what the page shows as `name`.png when screenshots are asked for.
    fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("CONDUCTOR_UI_SCREENSHOTS") {
            let png = self.rt.block_on(self.c().screenshot()).unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Two workers then a reviewer; each waits for its own file before it ends.
const GATED: &str = r#"version = 1
name = "t"

[agents.gated]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; echo $$ >> pids; echo started $CONDUCTOR_INSTANCE; while [ ! -e \"go-$CONDUCTOR_NODE\" ]; do sleep 0.05; done; echo finished $CONDUCTOR_INSTANCE"]

[defaults]
agent = "gated"
stop = { exit_zero = true, max_iterations = 1 }

[nodes.work]
for_each = ["parser", "lexer"]
prompt = "work on {{ item }}"

[nodes.review]
needs = ["work"]
prompt = "review"
"#;

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run runs it"]
fn the_graph_shows_every_instance_and_follows_their_states_live() {
    let flow = Flow::new(GATED);
    let mut apply = flow.spawn(&["--json", "--grace", "300ms"]);
    wait_for("the workers", || {
        std::fs::read_to_string(flow.path().join("pids")).is_ok_and(|p| p.lines().count() == 2)
    });
    let served = Served::start(&flow.root(), &[], &[]);
    let id = served.latest_apply();
    let b = Browser::start();
    b.goto(&format!("{}/", served.base));
    b.until(
        "the running apply in the overview",
        &format!("const r = document.querySelector('#overview .apply-row[data-apply-id=\"{id}\"]'); return !!r && r.dataset.state === 'running'"),
    );
    b.screenshot("overview");
    b.goto(&format!("{}/#/apply/t/{id}", served.base));
    b.until(
        "the workers running and the reviewer waiting",
        "const s = k => { const e = document.querySelector(`#dag [data-instance=\"${k}\"]`); return e && e.dataset.state; };
         return s('work[parser]') === 'running' && s('work[lexer]') === 'running' && s('review') === 'waiting'",
    );
    b.until(
        "the header counts",
        "const c = document.querySelector('#counts'); return !!c && c.innerText.includes('running 2')",
    );
    b.screenshot("apply-running");
    std::fs::write(flow.path().join("go-work"), "").unwrap();
    b.until(
        "the workers done and the reviewer running",
        "const s = k => { const e = document.querySelector(`#dag [data-instance=\"${k}\"]`); return e && e.dataset.state; };
         return s('work[parser]') === 'done' && s('work[lexer]') === 'done' && s('review') === 'running'",
    );
    std::fs::write(flow.path().join("go-review"), "").unwrap();
    b.until(
        "everything done",
        "const c = document.querySelector('#counts'); return !!c && c.innerText.includes('done 3/3')",
    );
    assert_eq!(b.state_of("review"), "done");
    assert!(apply.wait().unwrap().success());
    b.screenshot("apply-done");
}

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run runs it"]
fn an_instance_page_shows_its_iterations_and_the_live_transcript() {
    let flow = Flow::new(
        r#"version = 1
name = "t"
[agents.two]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; echo attempt $CONDUCTOR_ITERATION begins; if [ $CONDUCTOR_ITERATION = 2 ]; then while [ ! -e go ]; do sleep 0.05; done; echo attempt 2 found it; touch \"$JRUN_TASK_FOLDER/DONE\"; fi"]
[nodes.n]
agent = "two"
prompt = "p"
stop = { done_file = true, max_iterations = 3 }
"#,
    );
    let mut apply = flow.spawn(&["--json", "--grace", "300ms"]);
    let served = Served::start(&flow.root(), &[], &[]);
    wait_for("the second iteration", || {
        let id =
            served.get("/api/v1/overview").json()["projects"][0]["applies"][0]["apply_id"].clone();
        id.is_string()
            && served
                .get(&format!(
                    "/api/v1/projects/t/applies/{}/instances/n",
                    id.as_str().unwrap()
                ))
                .json()["iterations"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
    });
    let id = served.latest_apply();
    let b = Browser::start();
    b.goto(&format!("{}/#/apply/t/{id}/instance/n", served.base));
    b.until(
        "two iteration rows, the first saying why it went on",
        "const r1 = document.querySelector('#iterations tr[data-iteration=\"1\"]');
         const r2 = document.querySelector('#iterations tr[data-iteration=\"2\"]');
         return !!r1 && !!r2 && r1.innerText.includes('no DONE')",
    );
    b.until(
        "the running attempt's transcript",
        "const t = document.querySelector('#transcript'); return !!t && t.innerText.includes('attempt 2 begins')",
    );
    b.screenshot("instance-running");
    std::fs::write(flow.path().join("go"), "").unwrap();
    b.until(
        "the rest of the transcript, live",
        "const t = document.querySelector('#transcript'); return !!t && t.innerText.includes('attempt 2 found it')",
    );
    b.until(
        "the second iteration finishing the node",
        "const r2 = document.querySelector('#iterations tr[data-iteration=\"2\"]'); return !!r2 && r2.innerText.includes('done_file')",
    );
    assert!(apply.wait().unwrap().success());
}

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run runs it"]
fn an_answer_composed_on_the_page_reaches_the_agent_that_asked() {
    let flow = Flow::new(
        r#"version = 1
name = "t"
[agents.asker]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; conductor bus post --type QUESTION --body 'which parser?' >/dev/null; while ! conductor bus read | grep -q 'use the fast one'; do sleep 0.1; done; echo told: use the fast one"]
[nodes.n]
agent = "asker"
prompt = "p"
stop = { exit_zero = true, max_iterations = 1 }
"#,
    );
    let mut apply = flow.spawn(&["--json", "--grace", "300ms"]);
    let served = Served::start(&flow.root(), &[], &[]);
    wait_for("the question", || {
        std::fs::read_dir(flow.root().join("t")).is_ok_and(|d| {
            d.filter_map(Result::ok).any(|e| {
                std::fs::read_to_string(e.path().join("TASK-MESSAGE-BUS.md"))
                    .is_ok_and(|b| b.contains("which parser?"))
            })
        })
    });
    let id = served.latest_apply();
    let task = served
        .get(&format!("/api/v1/projects/t/applies/{id}/instances/n"))
        .json()["instance"]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = Browser::start();
    b.goto(&format!("{}/#/apply/t/{id}", served.base));
    b.until(
        "the question in the attention strip",
        "return !!document.querySelector('#attention .attention-item[data-instance=\"n\"][data-kind=\"question\"]')",
    );
    b.goto(&format!("{}/#/bus/t/{task}", served.base));
    b.until(
        "the question on the bus",
        "return [...document.querySelectorAll('#bus .message[data-type=\"QUESTION\"]')].some(m => m.innerText.includes('which parser?'))",
    );
    b.click("#bus .message[data-type=\"QUESTION\"] .reply");
    b.type_into("#compose textarea[name=body]", "use the fast one");
    b.screenshot("bus-reply");
    b.click("#compose button[type=submit]");
    b.until(
        "the answer on the bus",
        "return [...document.querySelectorAll('#bus .message')].some(m => m.innerText.includes('use the fast one'))",
    );
    assert!(
        apply.wait().unwrap().success(),
        "the agent read the answer and ended"
    );
    let out = served
        .get(&format!("/api/v1/projects/t/applies/{id}/instances/n"))
        .json();
    let run = out["iterations"][0]["run_id"].as_str().unwrap();
    assert_eq!(
        served
            .get(&format!(
                "/api/v1/projects/t/tasks/{task}/runs/{run}/stdout"
            ))
            .body,
        "told: use the fast one\n"
    );
    // The answer is linked to the question it answers.
    let bus = served
        .get(&format!("/api/v1/projects/t/messages?task_id={task}"))
        .json();
    let list = bus["messages"].as_array().unwrap();
    let q = list.iter().find(|m| m["type"] == "QUESTION").unwrap();
    let a = list
        .iter()
        .find(|m| m["body"] == "use the fast one")
        .unwrap();
    assert!(
        a["parents"]
            .to_string()
            .contains(q["msg_id"].as_str().unwrap()),
        "{a}"
    );
}

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run runs it"]
fn the_stop_button_stops_the_apply_and_leaves_no_process() {
    let flow = Flow::new(GATED);
    let mut apply = flow.spawn(&["--json", "--grace", "300ms"]);
    wait_for("the workers", || {
        std::fs::read_to_string(flow.path().join("pids")).is_ok_and(|p| p.lines().count() == 2)
    });
    let served = Served::start(&flow.root(), &[], &[]);
    let id = served.latest_apply();
    let b = Browser::start();
    b.goto(&format!("{}/#/apply/t/{id}", served.base));
    b.until("the workers running", "const e = document.querySelector('#dag [data-instance=\"work[lexer]\"]'); return !!e && e.dataset.state === 'running'");
    b.click("#stop-apply");
    // The page asks first.
    b.rt.block_on(b.c().accept_alert()).unwrap();
    let status = apply.wait().unwrap();
    assert_eq!(status.code(), Some(130), "stopped as on Ctrl-C");
    for pid in std::fs::read_to_string(flow.path().join("pids"))
        .unwrap()
        .lines()
    {
        assert!(!alive(pid.trim().parse().unwrap()), "agent {pid} is gone");
    }
    b.until(
        "the apply interrupted",
        "const c = document.body.innerText; return c.includes('interrupted')",
    );
    b.until("the stop button gone", "return !document.querySelector('#stop-apply') || document.querySelector('#stop-apply').hidden || document.querySelector('#stop-apply').disabled");
}

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run runs it"]
fn the_start_form_runs_a_workflow_with_the_params_given() {
    let flow = Flow::empty();
    let dir = flow.path().join("workflows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("greet.toml"),
        r#"version = 1
name = "greet"
[params]
who = { type = "string", description = "Whom to greet." }
[agents.sh]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; echo hello $WHO"]
[nodes.hi]
agent = "sh"
prompt = "p"
env = { WHO = "{{ params.who }}" }
stop = { exit_zero = true, max_iterations = 1 }
"#,
    )
    .unwrap();
    let served = Served::start(&flow.root(), &["--workflows", dir.to_str().unwrap()], &[]);
    let b = Browser::start();
    b.goto(&format!("{}/#/start", served.base));
    b.until(
        "the form with its param",
        "return !!document.querySelector('#start-form [name=\"param-who\"]')",
    );
    b.type_into("#start-form [name=\"param-who\"]", "Ada");
    b.screenshot("start");
    b.click("#start-form button[type=submit]");
    b.until(
        "the started apply",
        "const s = document.querySelector('#started'); return !!s && !s.hidden && /\\d/.test(s.innerText)",
    );
    wait_for("the apply to end", || {
        served.get("/api/v1/overview").json()["projects"][0]["applies"][0]["state"] == "done"
    });
    let id = served.latest_apply();
    assert_eq!(served.stdout_of("greet", &id, "hi"), "hello Ada\n");
}

#[test]
#[ignore = "needs chromium and chromedriver; .ci/run runs it"]
fn a_graph_of_thousands_draws_what_is_in_view_and_finds_the_rest() {
    let items: Vec<String> = (0..3000).map(|i| format!("\"item{i:04}\"")).collect();
    let flow = Flow::new(&format!(
        r#"version = 1
name = "t"
[agents.sh]
kind = "command"
command = ["true"]
[nodes.work]
agent = "sh"
prompt = "p"
for_each = [{}]
stop = {{ exit_zero = true, max_iterations = 1 }}
"#,
        items.join(", ")
    ));
    let (out, summary) = flow.apply(&["--max-parallel", "64"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = summary["apply_id"].as_str().unwrap();
    let served = Served::start(&flow.root(), &[], &[]);
    let b = Browser::start();
    b.goto(&format!("{}/#/apply/t/{id}", served.base));
    b.until(
        "the header counting all 3,000 and the boxes in view drawn",
        "const c = document.querySelector('#counts'); const n = document.querySelectorAll('#dag [data-instance]').length;
         return !!c && c.innerText.includes('done 3000/3000') && n > 0 && n < 3000",
    );
    // One far from the view is drawn when it is looked for.
    b.type_into("#dag-find", "item2999");
    b.until(
        "the instance found",
        "const e = document.querySelector('#dag [data-instance=\"work[item2999]\"]'); return !!e && e.classList.contains('found')",
    );
    // Scrolling to the end draws what comes into view.
    b.js("const d = document.querySelector('#dag'); d.scrollTop = d.scrollHeight; window.scrollTo(0, document.body.scrollHeight); return true");
    b.until(
        "the last boxes drawn on scrolling",
        "return !!document.querySelector('#dag [data-instance=\"work[item2990]\"]')",
    );
}
