//! `conductor serve` over real HTTP on 127.0.0.1: what the page reads (an
//! apply, its instances and iterations, a run's files, the bus, the
//! workflows it may start, metrics), the live streams and their resume,
//! the actions (post, stop, start, re-run), and what keeps the server
//! safe (Host, Origin, token, read-only, path segments) (docs/api.md).

use serde_json::json;

use crate::apply_support::{Flow, alive, wait_for};
use crate::serve_support::{Served, next_event};

const FLOW: &str = r#"version = 1
name = "t"

[agents.sh]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; echo working on $CONDUCTOR_INSTANCE"]

[defaults]
agent = "sh"
stop = { exit_zero = true, max_iterations = 1 }

[nodes.work]
for_each = ["parser", "lexer"]
prompt = "work on {{ item }}"

[nodes.review]
needs = ["work"]
prompt = "review"
"#;

/// An applied `FLOW`, and a server over its runs root.
fn applied(extra: &[&str]) -> (Flow, Served, String) {
    let flow = Flow::new(FLOW);
    let (out, summary) = flow.apply(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = Served::start(&flow.root(), extra, &[]);
    let apply = summary["apply_id"].as_str().unwrap().to_string();
    (flow, served, apply)
}

#[test]
fn an_apply_reads_as_status_shows_it_with_needs_iterations_and_files() {
    let (flow, served, apply) = applied(&[]);
    assert_eq!(served.get("/api/v1/health").json()["status"], "ok");
    let overview = served.get("/api/v1/overview").json();
    let row = &overview["projects"][0]["applies"][0];
    assert_eq!(row["apply_id"], apply.as_str());
    assert_eq!(row["state"], "done");
    assert_eq!(row["counts"]["done"], 3);
    assert_eq!(row["counts"]["total"], 3);

    let d = served
        .get(&format!("/api/v1/projects/t/applies/{apply}"))
        .json();
    assert_eq!(d["state"], "done");
    assert!(d["file"].as_str().unwrap().ends_with("flow.toml"));
    let keys: Vec<&str> = d["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["work[parser]", "work[lexer]", "review"]);
    assert_eq!(
        d["instances"][2]["needs"],
        json!(["work[parser]", "work[lexer]"])
    );
    // The same rows as `conductor status --json`.
    let status: serde_json::Value = serde_json::from_slice(
        &crate::support::conductor()
            .args(["status", "--json", "--root"])
            .arg(flow.root())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for (a, b) in status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .zip(d["instances"].as_array().unwrap())
    {
        for field in ["instance", "state", "iterations", "stop_reason", "task_id"] {
            assert_eq!(a[field], b[field], "{field}");
        }
    }

    let i = served
        .get(&format!(
            "/api/v1/projects/t/applies/{apply}/instances/work%5Blexer%5D"
        ))
        .json();
    assert_eq!(i["instance"]["state"], "done");
    let it = &i["iterations"][0];
    assert_eq!(it["iteration"], 1);
    assert_eq!(it["status"], "completed");
    assert_eq!(it["exit_code"], 0);
    assert_eq!(it["stop_reason"], "exit_zero");

    let (task, run) = served.run_of("t", &apply, "work[lexer]");
    let base = format!("/api/v1/projects/t/tasks/{task}/runs/{run}");
    let out = served.get(&format!("{base}/stdout"));
    assert_eq!(out.status, 200);
    assert_eq!(out.body, "working on work[lexer]\n");
    assert!(
        served
            .get(&format!("{base}/prompt"))
            .body
            .contains("work on lexer")
    );
    assert_eq!(served.get(&format!("{base}/nope")).status, 404);
    assert_eq!(
        served
            .get(&format!(
                "/api/v1/projects/t/applies/{apply}/instances/nope"
            ))
            .status,
        404
    );
    assert_eq!(
        served.get("/api/v1/projects/t/applies/apply-none").status,
        404
    );
    assert_eq!(served.get("/api/v1/projects/none/applies/x").status, 404);
}

#[test]
fn metrics_count_applies_instances_and_iterations() {
    let (_flow, served, _) = applied(&[]);
    let m = served.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.body.contains("conductor_applies{state=\"done\"} 1"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("conductor_instances{project=\"t\",workflow=\"t\",state=\"done\"} 3"),
        "{}",
        m.body
    );
    assert!(m.body.contains("conductor_iterations 3"), "{}", m.body);
    assert!(m.body.contains("conductor_failures 0"), "{}", m.body);
}

#[test]
fn no_path_segment_reaches_outside_the_root() {
    let (flow, served, apply) = applied(&[]);
    std::fs::write(flow.path().join("secret.txt"), "top secret").unwrap();
    let (task, run) = served.run_of("t", &apply, "review");
    for path in [
        "/api/v1/projects/..%2F..%2Fsecret.txt/messages".to_string(),
        "/api/v1/projects/%2E%2E/messages".to_string(),
        "/api/v1/projects/t/messages?task_id=..%2F..".to_string(),
        format!("/api/v1/projects/t/tasks/{task}/runs/..%2F..%2F..%2F..%2Fsecret.txt/stdout"),
        format!("/api/v1/projects/t/tasks/..%5C..%5Csecret.txt/runs/{run}/stdout"),
        format!("/api/v1/projects/t/tasks/{task}/runs/{run}/..%2F..%2F..%2F..%2Fsecret.txt"),
        "/api/v1/projects/t/tasks/%00/runs/x/stdout".to_string(),
        "/../../secret.txt".to_string(),
        "/assets/..%2F..%2Fsecret.txt".to_string(),
    ] {
        let a = served.get(&path);
        assert!(
            a.status == 400 || a.status == 404,
            "{path}: {} {}",
            a.status,
            a.body
        );
        assert!(!a.body.contains("top secret"), "{path}");
        assert!(a.json()["error"]["message"].is_string(), "{path}");
    }
}

#[test]
fn a_link_or_a_fifo_an_agent_left_in_the_run_store_is_never_followed() {
    let (flow, served, apply) = applied(&[]);
    let (task, run) = served.run_of("t", &apply, "review");
    let outside = flow.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("agent-stdout.txt"), "top secret").unwrap();
    let runs = flow.root().join("t").join(&task).join("runs");
    std::os::unix::fs::symlink(&outside, runs.join("evil")).unwrap();
    let a = served.get(&format!("/api/v1/projects/t/tasks/{task}/runs/evil/stdout"));
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(!a.body.contains("top secret"));
    // A file of a real run linked elsewhere reads as nothing.
    let stdout = runs.join(&run).join("agent-stdout.txt");
    std::fs::remove_file(&stdout).unwrap();
    std::os::unix::fs::symlink(outside.join("agent-stdout.txt"), &stdout).unwrap();
    let a = served.get(&format!(
        "/api/v1/projects/t/tasks/{task}/runs/{run}/stdout"
    ));
    assert!(!a.body.contains("top secret"), "{}", a.body);
    // A FIFO would block a reader forever: it is not read.
    std::fs::remove_file(&stdout).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&stdout)
            .status()
            .unwrap()
            .success()
    );
    let a = served.get(&format!(
        "/api/v1/projects/t/tasks/{task}/runs/{run}/stdout"
    ));
    assert_eq!(a.body, "");
    assert_eq!(
        served.get("/api/v1/health").status,
        200,
        "the server still answers"
    );
}

#[test]
fn a_page_on_another_host_or_origin_can_neither_read_nor_act() {
    let (_flow, served, _) = applied(&[]);
    // DNS rebinding: another name that resolves to 127.0.0.1.
    let a = served.get_with("/api/v1/overview", &[("Host", "evil.example:80")]);
    assert_eq!(a.status, 403);
    assert_eq!(a.json()["error"]["code"], "FORBIDDEN");
    // A page of another site posting through the user's browser.
    let a = served.post_with(
        "/api/v1/projects/t/messages",
        &json!({"body": "x"}),
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(a.status, 403);
    assert!(a.body.contains("evil.example"), "{}", a.body);
    // A name of this machine on another port (a forwarded port) may read
    // and act; a page of this machine may act.
    let a = served.get_with("/api/v1/overview", &[("Host", "localhost:8080")]);
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("x-frame-options"),
        Some("DENY"),
        "never framed by another site"
    );
    assert!(
        a.header("content-security-policy")
            .is_some_and(|c| c.contains("frame-ancestors 'none'"))
    );
    let a = served.post_with(
        "/api/v1/projects/t/messages",
        &json!({"body": "through a forwarded port"}),
        &[
            ("Host", "localhost:8080"),
            ("Origin", "http://localhost:8080"),
        ],
    );
    assert_eq!(a.status, 201, "{}", a.body);
    // Its own page may.
    let own = format!("http://127.0.0.1:{}", served.port());
    let a = served.post_with(
        "/api/v1/projects/t/messages",
        &json!({"body": "from the page"}),
        &[("Origin", own.as_str())],
    );
    assert_eq!(a.status, 201, "{}", a.body);
}

#[test]
fn read_only_refuses_every_action_and_says_so() {
    let (flow, served, apply) = applied(&["--read-only"]);
    assert_eq!(served.get("/api/v1/server").json()["read_only"], true);
    for (path, body) in [
        (
            "/api/v1/projects/t/messages".to_string(),
            json!({"body": "x"}),
        ),
        (
            format!("/api/v1/projects/t/applies/{apply}/stop"),
            json!({}),
        ),
        (
            format!("/api/v1/projects/t/applies/{apply}/instances/review/stop"),
            json!({}),
        ),
        (
            format!("/api/v1/projects/t/applies/{apply}/instances/review/rerun"),
            json!({}),
        ),
        (
            "/api/v1/workflows/start".to_string(),
            json!({"file": "flow.toml"}),
        ),
    ] {
        let a = served.post(&path, &body);
        assert_eq!(a.status, 403, "{path}");
        assert_eq!(a.json()["error"]["code"], "READ_ONLY", "{path}");
    }
    let bus = std::fs::read_to_string(flow.root().join("t/PROJECT-MESSAGE-BUS.md")).unwrap();
    assert!(!bus.contains("type: USER"), "nothing was posted");
}

#[test]
fn a_request_the_framework_refuses_gets_the_error_body_too() {
    let (_flow, served, _apply) = applied(&[]);
    let wrong_method = served.get("/api/v1/workflows/start");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.json()["error"]["code"], "METHOD_NOT_ALLOWED");
    assert!(
        wrong_method
            .headers
            .iter()
            .any(|(k, v)| k == "allow" && v.contains("POST")),
        "{:?}",
        wrong_method.headers
    );
    let not_json = served.post_with("/api/v1/projects/t/messages", &json!("not an object"), &[]);
    assert_eq!(not_json.status, 422, "{}", not_json.body);
    let e = not_json.json();
    assert_eq!(e["error"]["code"], "UNPROCESSABLE_ENTITY");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid type"),
        "the message says what did not parse: {e}"
    );
    let bad_query = served.get("/api/v1/projects/t/messages?limit=many");
    assert_eq!(bad_query.status, 400, "{}", bad_query.body);
    assert_eq!(bad_query.json()["error"]["code"], "BAD_REQUEST");
}

#[test]
fn beyond_loopback_a_token_is_required_and_checked() {
    let flow = Flow::new(FLOW);
    // Refused without one.
    let out = crate::support::conductor()
        .args(["serve", "--bind", "0.0.0.0:0", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a token is required"));
    let token = "a-long-enough-token-for-tests";
    let served = Served::start(
        &flow.root(),
        &["--token-env", "CONDUCTOR_TEST_TOKEN"],
        &[("CONDUCTOR_TEST_TOKEN", token)],
    );
    assert_eq!(served.get("/api/v1/overview").status, 401);
    assert_eq!(
        served
            .get_with(
                "/api/v1/overview",
                &[("Authorization", "Bearer wrong-token-000000")]
            )
            .status,
        401
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        served
            .get_with("/api/v1/overview", &[("Authorization", bearer.as_str())])
            .status,
        200
    );
    // Health and metrics are open; the page's entry sets the cookie.
    assert_eq!(served.get("/api/v1/health").status, 200);
    assert_eq!(served.get("/?token=wrong").status, 401);
    let entry = served.get(&format!("/?token={token}"));
    assert_eq!(entry.status, 303);
    let cookie = entry.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(
        served
            .get_with("/api/v1/overview", &[("Cookie", pair)])
            .status,
        200
    );
    // With a token, a page acts from the address it was opened at, whatever
    // name that is, and from no other.
    let post = |host: &str, origin: &str| {
        served
            .post_with(
                "/api/v1/projects/t/messages",
                &json!({"body": "x"}),
                &[("Cookie", pair), ("Host", host), ("Origin", origin)],
            )
            .status
    };
    assert_eq!(
        post("myhost:14355", "http://myhost:14355"),
        404,
        "past the checks: no project t yet"
    );
    assert_eq!(post("myhost:14355", "http://evil.example"), 403);
}

#[test]
fn a_bus_is_listed_filtered_posted_to_and_streamed_with_resume() {
    let (_flow, served, apply) = applied(&[]);
    let (task, _) = served.run_of("t", &apply, "review");
    let q = served.post(
        "/api/v1/projects/t/messages",
        &json!({"task_id": task, "type": "QUESTION", "body": "which parser?"}),
    );
    assert_eq!(q.status, 201, "{}", q.body);
    let question = q.json()["msg_id"].as_str().unwrap().to_string();
    let stream = served.events(
        &format!("/api/v1/projects/t/messages/stream?task_id={task}"),
        None,
    );
    let (_, id, data) = next_event(&stream, "the question", |e, _, d| {
        e == "message" && d.contains("which parser?")
    });
    assert_eq!(id, question);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&data).unwrap()["type"],
        "QUESTION"
    );
    // A reply is linked to the question, and reaches the open stream.
    let a = served.post(
        "/api/v1/projects/t/messages",
        &json!({"task_id": task, "type": "ANSWER", "body": "the fast one", "parent": question}),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let (_, answer_id, data) = next_event(&stream, "the answer", |e, _, d| {
        e == "message" && d.contains("the fast one")
    });
    let answer: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert!(
        answer["parents"].to_string().contains(&question),
        "{answer}"
    );
    // The bus file holds them, as `conductor bus read` shows.
    let read = served
        .get(&format!(
            "/api/v1/projects/t/messages?task_id={task}&type=ANSWER"
        ))
        .json();
    let listed = read["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["body"], "the fast one");
    let found = served
        .get(&format!(
            "/api/v1/projects/t/messages?task_id={task}&q=parser"
        ))
        .json();
    assert_eq!(found["messages"].as_array().unwrap().len(), 1);
    // Resumed after the question: only what came later.
    let resumed = served.events(
        &format!("/api/v1/projects/t/messages/stream?task_id={task}"),
        Some(&question),
    );
    let (_, first, _) = next_event(&resumed, "the first after the cursor", |e, _, _| {
        e == "message"
    });
    assert_eq!(first, answer_id);
    // What is wrong is said.
    for (body, says) in [
        (json!({"task_id": task, "body": "  "}), "empty"),
        (
            json!({"task_id": task, "type": "lower", "body": "x"}),
            "a person posts one of",
        ),
        (
            json!({"task_id": task, "body": "x", "parent": "MSG-none"}),
            "not a message",
        ),
        (json!({"body": "x", "extra": 1}), "unknown field"),
    ] {
        let a = served.post("/api/v1/projects/t/messages", &body);
        assert!(a.status == 400 || a.status == 422, "{body}: {}", a.status);
        assert!(a.body.contains(says), "{body}: {}", a.body);
    }
}

#[test]
fn a_running_agents_output_streams_live_and_stop_ends_the_apply_leaving_nothing() {
    let flow = Flow::new(
        r#"version = 1
name = "t"
[agents.slow]
kind = "command"
command = ["sh", "-c", "echo $$ > agent.pid; echo first line; while [ ! -e go ]; do sleep 0.05; done; echo second line; trap '' TERM; exec sleep 60"]
[nodes.n]
agent = "slow"
prompt = "p"
stop = { exit_zero = true, max_iterations = 1 }
"#,
    );
    // The agent outlives SIGTERM, so stopping takes the whole grace: a
    // second stop asked meanwhile finds the apply still stopping.
    let mut apply = flow.spawn(&["--json", "--grace", "1s"]);
    wait_for("the agent", || flow.path().join("agent.pid").exists());
    let served = Served::start(&flow.root(), &[], &[]);
    let overview = served.get("/api/v1/overview").json();
    let row = &overview["projects"][0]["applies"][0];
    assert_eq!(row["state"], "running");
    assert_eq!(row["running"], true);
    let id = row["apply_id"].as_str().unwrap().to_string();
    let updates = served.events(&format!("/api/v1/projects/t/applies/{id}/stream"), None);
    let (_, _, data) = next_event(&updates, "the apply", |e, _, _| e == "apply");
    let d: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(d["instances"][0]["state"], "running");
    assert_eq!(d["counts"]["running"], 1);

    let i = served
        .get(&format!("/api/v1/projects/t/applies/{id}/instances/n"))
        .json();
    assert_eq!(i["iterations"][0]["status"], "running");
    let task = i["instance"]["task_id"].as_str().unwrap();
    let run = i["iterations"][0]["run_id"].as_str().unwrap();
    let output = served.events(
        &format!("/api/v1/projects/t/tasks/{task}/runs/{run}/stdout/stream"),
        None,
    );
    let (_, offset, data) = next_event(&output, "the first line", |e, _, _| e == "chunk");
    assert!(data.contains("first line"), "{data}");
    std::fs::write(flow.path().join("go"), "").unwrap();
    next_event(&output, "the second line, as it is written", |e, _, d| {
        e == "chunk" && d.contains("second line")
    });
    // Resumed from the first chunk's offset: only what came after.
    let resumed = served.events(
        &format!("/api/v1/projects/t/tasks/{task}/runs/{run}/stdout/stream"),
        Some(&offset),
    );
    let (_, _, data) = next_event(&resumed, "the rest", |e, _, _| e == "chunk");
    assert!(
        !data.contains("first line") && data.contains("second line"),
        "{data}"
    );

    let agent: i32 = std::fs::read_to_string(flow.path().join("agent.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stop = served.post(&format!("/api/v1/projects/t/applies/{id}/stop"), &json!({}));
    assert_eq!(stop.status, 202, "{}", stop.body);
    // Asked again while it stops: not a second Ctrl-C (which kills at once).
    let again = served.post(&format!("/api/v1/projects/t/applies/{id}/stop"), &json!({}));
    assert_eq!(again.status, 202, "{}", again.body);
    let status = apply.wait().unwrap();
    assert_eq!(status.code(), Some(130), "stopped as on Ctrl-C");
    assert!(!alive(agent), "the agent is gone");
    next_event(&output, "the end of the run's output", |e, _, _| e == "end");
    let d = served
        .get(&format!("/api/v1/projects/t/applies/{id}"))
        .json();
    assert_eq!(d["state"], "interrupted");
    assert_eq!(d["running"], false);
    // Nothing to stop any more.
    let again = served.post(&format!("/api/v1/projects/t/applies/{id}/stop"), &json!({}));
    assert_eq!(again.status, 409);
}

#[test]
fn a_workflow_is_started_from_its_params_and_an_instance_re_run() {
    let flow = Flow::empty();
    let dir = flow.path().join("workflows");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("greet.toml"),
        r#"version = 1
name = "greet"
[params]
who = { type = "string", description = "Whom to greet." }
times = { type = "int", default = 1 }
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
    std::fs::write(dir.join("broken.toml"), "version = 1\nname = \n").unwrap();
    let served = Served::start(&flow.root(), &["--workflows", dir.to_str().unwrap()], &[]);
    let w = served.get("/api/v1/workflows").json();
    let list = w["workflows"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["file"], "broken.toml");
    assert!(list[0]["error"].as_str().unwrap().contains("validate"));
    let greet = &list[1];
    assert_eq!(greet["name"], "greet");
    assert_eq!(greet["params"][0]["name"], "who");
    assert_eq!(greet["params"][0]["required"], true);
    assert_eq!(greet["params"][0]["description"], "Whom to greet.");
    assert_eq!(greet["params"][1]["type"], "int");
    assert_eq!(greet["params"][1]["default"], 1);

    // A required param missing is the form's error; nothing starts.
    let a = served.post("/api/v1/workflows/start", &json!({"file": "greet.toml"}));
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("who"), "{}", a.body);
    // Only files under --workflows.
    let a = served.post("/api/v1/workflows/start", &json!({"file": "../greet.toml"}));
    assert_eq!(a.status, 404);
    let a = served.post(
        "/api/v1/workflows/start",
        &json!({"file": "greet.toml", "params": {"who": "Ada", "times": 2}}),
    );
    assert_eq!(a.status, 202, "{}", a.body);
    let done = || {
        let o = served.get("/api/v1/overview").json();
        o["projects"][0]["applies"][0]["state"] == "done"
    };
    wait_for("the started apply to end", done);
    let id = served.latest_apply();
    assert_eq!(served.stdout_of("greet", &id, "hi"), "hello Ada\n");
    // Re-run: the same params, forced.
    let a = served.post(
        &format!("/api/v1/projects/greet/applies/{id}/instances/hi/rerun"),
        &json!({}),
    );
    assert_eq!(a.status, 202, "{}", a.body);
    wait_for("the re-run", || {
        let o = served.get("/api/v1/overview").json();
        let first = &o["projects"][0]["applies"][0];
        first["apply_id"] != id.as_str() && first["state"] == "done"
    });
    let o = served.get("/api/v1/overview").json();
    let rerun = o["projects"][0]["applies"][0]["apply_id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = served
        .get(&format!(
            "/api/v1/projects/greet/applies/{rerun}/instances/hi"
        ))
        .json();
    assert_eq!(
        d["instance"]["stop_reason"], "exit_zero",
        "it ran again, not up to date"
    );
}

#[test]
fn apply_ui_serves_the_running_apply_and_says_where() {
    let flow = Flow::new(
        r#"version = 1
name = "t"
[agents.gated]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; while [ ! -e go ]; do sleep 0.05; done"]
[nodes.n]
agent = "gated"
prompt = "p"
stop = { exit_zero = true, max_iterations = 1 }
"#,
    );
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(flow.path())
        .args(["apply", "flow.toml", "--ui=127.0.0.1:0", "--root"])
        .arg(flow.root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("apply --ui says where its page is");
        if let Some(at) = line.find("http://") {
            break line[at..].trim_end_matches('/').to_string();
        }
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    wait_for("the apply on its page", || {
        let body = agent
            .get(format!("{url}/api/v1/overview"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let o: serde_json::Value = serde_json::from_str(&body).unwrap();
        o["projects"][0]["applies"][0]["counts"]["running"] == 1
    });
    let page = agent
        .get(format!("{url}/"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(page.contains("/assets/app.js"), "{page}");
    std::fs::write(flow.path().join("go"), "").unwrap();
    assert!(child.wait().unwrap().success());
    // The page ends with the apply.
    assert!(agent.get(format!("{url}/api/v1/health")).call().is_err());
}

#[test]
fn the_openapi_document_covers_every_route_with_schemas_from_the_code() {
    let (_flow, served, _) = applied(&[]);
    let doc = served.get("/api/v1/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // Every route the server has, read from its router.
    let routes =
        std::fs::read_to_string(crate::support::root().join("src/serve/routes.rs")).unwrap();
    let flat: String = routes.split_whitespace().collect();
    let mut seen = 0;
    for rest in flat.split(".route(\"").skip(1) {
        let rest = rest.split(".route(").next().unwrap();
        let path = rest.split('"').next().unwrap();
        if path == "/" || path.starts_with("/assets/") {
            continue;
        }
        let full = if path == "/metrics" {
            path.to_string()
        } else {
            format!("/api/v1{path}")
        };
        let methods: Vec<&str> = ["get", "post"]
            .into_iter()
            .filter(|m| rest.contains(&format!("{m}(")) || rest.contains(&format!(".{m}(")))
            .collect();
        for m in methods {
            assert!(
                paths.get(&full).is_some_and(|p| p.get(m).is_some()),
                "{} {full} is not in the OpenAPI document",
                m.to_uppercase()
            );
            seen += 1;
        }
    }
    assert!(seen >= 18, "only {seen} routes read from routes.rs");
    // Its schemas are the types' own: an instance has what status shows.
    let schemas = &doc["components"]["schemas"];
    for field in [
        "instance",
        "state",
        "iterations",
        "stop_reason",
        "why",
        "needs",
    ] {
        assert!(
            schemas["Instance"]["properties"].get(field).is_some(),
            "Instance lacks {field}: {}",
            schemas["Instance"]
        );
    }
    // Every reference resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(schemas.get(name).is_some(), "no schema {name}");
    }
}

#[test]
fn stopping_one_instance_ends_its_loop_and_the_rest_goes_on() {
    let flow = Flow::new(
        r#"version = 1
name = "t"
[agents.gated]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; echo $$ > pid-$CONDUCTOR_NODE; while [ ! -e go ]; do sleep 0.05; done"]
[defaults]
agent = "gated"
stop = { exit_zero = true, max_iterations = 1 }
[nodes.keep]
prompt = "p"
[nodes.drop]
prompt = "p"
[nodes.after]
needs = ["drop"]
prompt = "p"
"#,
    );
    let mut apply = flow.spawn(&["--json", "--grace", "300ms"]);
    wait_for("both agents", || {
        flow.path().join("pid-keep").exists() && flow.path().join("pid-drop").exists()
    });
    let served = Served::start(&flow.root(), &[], &[]);
    let id = served.get("/api/v1/overview").json()["projects"][0]["applies"][0]["apply_id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("/api/v1/projects/t/applies/{id}/instances");
    assert_eq!(
        served
            .post(&format!("{base}/after/stop"), &json!({}))
            .status,
        404,
        "not started"
    );
    let a = served.post(&format!("{base}/drop/stop"), &json!({}));
    assert_eq!(a.status, 202, "{}", a.body);
    let dropped: i32 = std::fs::read_to_string(flow.path().join("pid-drop"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the stopped instance to end", || {
        served.get(&format!("{base}/drop")).json()["instance"]["state"] == "failed"
    });
    let d = served.get(&format!("{base}/drop")).json();
    assert_eq!(d["instance"]["stop_reason"], "stopped");
    assert!(!alive(dropped), "its agent is gone");
    // The other goes on to its end; what needed the stopped one is skipped.
    assert_eq!(
        served.get(&format!("{base}/keep")).json()["instance"]["state"],
        "running"
    );
    std::fs::write(flow.path().join("go"), "").unwrap();
    let status = apply.wait().unwrap();
    assert_eq!(status.code(), Some(1), "a stopped instance is a failed one");
    let d = served
        .get(&format!("/api/v1/projects/t/applies/{id}"))
        .json();
    let state = |k: &str| {
        d["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance"] == k)
            .map(|i| i["state"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(state("keep"), "done");
    assert_eq!(state("drop"), "failed");
    assert_eq!(state("after"), "skipped");
    let again = served.post(&format!("{base}/keep/stop"), &json!({}));
    assert_eq!(again.status, 409);
}

#[test]
fn a_large_output_streams_in_pieces_and_arrives_whole() {
    let flow = Flow::new(
        r#"version = 1
name = "t"
[agents.big]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; head -c 700000 /dev/zero | tr '\\0' 'x'; echo; echo end-of-output"]
[nodes.n]
agent = "big"
prompt = "p"
stop = { exit_zero = true, max_iterations = 1 }
"#,
    );
    let (out, summary) = flow.apply(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = Served::start(&flow.root(), &[], &[]);
    let apply = summary["apply_id"].as_str().unwrap();
    let (task, run) = served.run_of("t", apply, "n");
    let whole = served.get(&format!(
        "/api/v1/projects/t/tasks/{task}/runs/{run}/stdout"
    ));
    assert_eq!(whole.body.len(), 700_000 + 1 + "end-of-output\n".len());
    let events = served.events(
        &format!("/api/v1/projects/t/tasks/{task}/runs/{run}/stdout/stream"),
        None,
    );
    let mut text = String::new();
    let mut chunks = 0;
    loop {
        let (event, _, data) = next_event(&events, "the rest of the output", |_, _, _| true);
        if event == "end" {
            break;
        }
        chunks += 1;
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        text.push_str(v["text"].as_str().unwrap());
    }
    assert_eq!(text, whole.body, "the pieces make the file");
    assert!(chunks >= 3, "sent in pieces, not whole: {chunks}");
}
