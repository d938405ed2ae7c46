//! `conductor serve` against the issue's "Fast" bars (docs/performance.md):
//!
//! - `serve_bus_to_page`: a record appended to a project bus, to its `data:`
//!   line arriving on an open `GET /api/v1/projects/{p}/messages/stream`
//!   (bar: 100 ms; the Go system's own test allows 200 ms). The bench
//!   appends through the library's `BusWriter` (no process start), reads the
//!   clock just before the append and again when the line is read, 200
//!   times, each after a pause of 0-50 ms so that the appends fall anywhere
//!   in the server's polling period. Median, p95 and max.
//! - `serve_apply_10000`: an apply of a static `for_each` of 10,000 items
//!   (agent `true`, `--max-parallel 64`), with the server up. While it
//!   runs, `GET /api/v1/projects/{p}/applies/{id}` is timed every 2 s; once
//!   it has ended, 5 times (median) with its size; then, when
//!   `/usr/bin/chromedriver` exists, headless Chromium opens
//!   `#/apply/{p}/{id}` and the bench times it until the graph holds every
//!   instance (`#dag [data-instance]`), 3 times (bar: under 1 s); then,
//!   once, where the page's time goes (fetch, `JSON.parse`, `renderDag`,
//!   the next frame), measured in the page.
//! - `serve_follow`: 4 live streams held open on the server for 60 s
//!   (`CONDUCTOR_BENCH_FOLLOW_SECS`): 2 on that apply's stream, 2 on the
//!   bus stream, while a thread appends a bus record every 100 ms. The
//!   server's `VmRSS` every 5 s (first, max, last; bar: flat), its CPU time,
//!   and the bus records' latency to those pages meanwhile.
//!
//! Everything runs the release binary that `cargo bench` builds beside this
//! bench (`CARGO_BIN_EXE_conductor`); the runs root lives under `TMPDIR`
//! (`TMPDIR=/dev/shm` takes the disk out). `CONDUCTOR_BENCH_SERVE_INSTANCES`
//! sets the fan-out's size (default 10,000). A filter argument selects
//! sections by name (`cargo bench --bench serve -- serve_follow`); the
//! follow and the timing of the page both need the apply, made for either.

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set itself up has nothing to measure"
)]
#![expect(
    clippy::print_stdout,
    reason = "the figures are printed for docs/performance.md"
)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use conductor::bus::{BusWriter, NewMessage};

const CONDUCTOR: &str = env!("CARGO_BIN_EXE_conductor");

/// The project both workflows write to, so one bus holds everything.
const PROJECT: &str = "bench";

/// A `conductor serve --bind 127.0.0.1:0 --root ROOT`, stopped (Ctrl-C)
/// when dropped.
struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    base: String,
    agent: ureq::Agent,
}

impl Served {
    fn start(root: &Path) -> Self {
        let mut child = Command::new(CONDUCTOR)
            .args(["serve", "--bind", "127.0.0.1:0", "--root"])
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("conductor serve starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("its stderr"));
        let mut line = String::new();
        stderr
            .read_line(&mut line)
            .expect("it says where it listens");
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in: {line}"))
            .trim_end_matches('/')
            .to_owned();
        // Whatever it says later is read, so that it never blocks on a pipe.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let agent = ureq::Agent::config_builder().build().into();
        Self { child, base, agent }
    }

    /// GET `path`: the time from the request to the last byte, and the body.
    fn get(&self, path: &str) -> (Duration, Vec<u8>) {
        let start = Instant::now();
        let mut response = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .expect("an answer");
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .read_to_end(&mut body)
            .expect("its body");
        (start.elapsed(), body)
    }

    fn proc_status(&self, field: &str) -> Option<u64> {
        proc_status(self.child.id(), field)
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

/// A `kB` (or count) field of `/proc/PID/status`.
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's `)`: state is the 1st, utime the 12th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Opens the server-sent event stream `path`; a thread hands each `data:`
/// line, with the moment it was read, to `on_data` until it returns false
/// or the server closes the stream.
fn follow(
    served: &Served,
    path: &str,
    mut on_data: impl FnMut(Instant, &str) -> bool + Send + 'static,
) {
    // An agent of its own: the stream holds its connection for good.
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut response = agent
        .get(format!("{}{path}", served.base))
        .call()
        .expect("the stream opens");
    std::thread::spawn(move || {
        let reader = BufReader::new(response.body_mut().as_reader());
        for line in reader.lines().map_while(Result::ok) {
            if let Some(data) = line.strip_prefix("data:")
                && !on_data(Instant::now(), data)
            {
                return;
            }
        }
    });
}

/// A record of `body` on the project bus.
fn record(body: String) -> NewMessage {
    NewMessage {
        kind: "INFO".into(),
        project_id: PROJECT.into(),
        body,
        ..NewMessage::default()
    }
}

/// The index `i` of a `"body":"PREFIXi"` in an event's JSON.
fn body_index(data: &str, prefix: &str) -> Option<usize> {
    let at = data.find(&format!("\"body\":\"{prefix}"))? + prefix.len() + 8;
    let digits = &data[at..];
    let end = digits.find('"')?;
    digits[..end].parse().ok()
}

/// A small deterministic generator (xorshift), for the pauses.
struct Spread(u64);

impl Spread {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> String {
    let m = f64::from(u32::try_from(kib).expect("a size that fits")) / 1024.0;
    format!("{m:.1} MiB")
}

fn percentiles(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "none arrived".into();
    }
    v.sort();
    let p95 = v[(v.len() * 95).div_ceil(100) - 1];
    format!(
        "median {:.1} ms, p95 {:.1} ms, max {:.1} ms, min {:.1} ms over {}",
        ms(v[v.len() / 2]),
        ms(p95),
        ms(v[v.len() - 1]),
        ms(v[0]),
        v.len()
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `conductor apply flow.toml --root ROOT --json` in `dir`, its summary
/// written to `summary.json` there.
fn apply_command(dir: &Path, root: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(CONDUCTOR);
    cmd.current_dir(dir)
        .args(["apply", "flow.toml", "--json", "--grace", "300ms", "--root"])
        .arg(root)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("summary.json")).expect("a summary file"))
        .stderr(Stdio::null());
    cmd
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary"))
        .expect("a JSON summary")
}

fn workflow(base: &Path, name: &str, toml: &str) -> PathBuf {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir).expect("a folder for the workflow");
    std::fs::write(dir.join("flow.toml"), toml).expect("write the workflow");
    dir
}

/// A one-node apply, so that the project and its bus exist.
fn tiny_apply(base: &Path, root: &Path) {
    let dir = workflow(
        base,
        "tiny",
        &format!(
            "version = 1\nname = \"tiny\"\nproject = \"{PROJECT}\"\n[agents.a]\nkind = \"command\"\n\
             command = [\"sh\", \"-c\", \"cat >/dev/null; echo hi\"]\n[nodes.n]\nagent = \"a\"\n\
             prompt = \"work\"\nstop = {{ exit_zero = true, max_iterations = 1 }}\n"
        ),
    );
    let status = apply_command(&dir, root, &[])
        .status()
        .expect("conductor runs");
    assert!(status.success(), "{}", summary(&dir));
}

fn bus_to_page(served: &Served, bus: &Path) {
    const N: usize = 200;
    let (tx, rx) = mpsc::channel();
    follow(
        served,
        &format!("/api/v1/projects/{PROJECT}/messages/stream"),
        move |at, data| tx.send((at, body_index(data, "latency-"))).is_ok(),
    );
    // The stream starts with the bus's last 50 records: let them pass.
    while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
    let mut writer = BusWriter::open(bus).expect("open the bus");
    let mut spread = Spread(0x9e37_79b9_7f4a_7c15);
    let mut times = Vec::with_capacity(N);
    for i in 0..N {
        std::thread::sleep(Duration::from_millis(spread.next_ms(50)));
        let msg = record(format!("latency-{i}"));
        let before = Instant::now();
        writer.append(&msg).expect("append");
        loop {
            let (at, index) = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the record reaches the stream");
            if index == Some(i) {
                times.push(at - before);
                break;
            }
        }
    }
    println!(
        "serve_bus_to_page: {} records (bar: 100 ms); server VmRSS {}",
        percentiles(times),
        served.proc_status("VmRSS").map_or("?".into(), mib),
    );
}

fn fan_out_toml(n: usize) -> String {
    let mut items = String::with_capacity(n * 8);
    for i in 0..n {
        let _ = write!(items, "{}\"i{i}\"", if i == 0 { "" } else { ", " });
    }
    format!(
        "version = 1\nname = \"fan\"\nproject = \"{PROJECT}\"\n[agents.a]\nkind = \"command\"\n\
         command = [\"true\"]\n[nodes.n]\nagent = \"a\"\nprompt = \"work on {{{{ item }}}}\"\n\
         for_each = [{items}]\nstop = {{ exit_zero = true, max_iterations = 1 }}\n"
    )
}

/// The id of the apply of workflow `name` on the project bus, once it has
/// started.
fn wait_apply_id(bus: &Path, name: &str) -> String {
    let start = Instant::now();
    loop {
        let found = conductor::bus::tail(bus, 200)
            .unwrap_or_default()
            .into_iter()
            .find(|m| {
                m.kind == "WORKFLOW_START"
                    && m.meta.get("workflow").map(String::as_str) == Some(name)
            });
        if let Some(id) = found.and_then(|m| m.meta.get("apply_id").cloned()) {
            return id;
        }
        assert!(
            start.elapsed() < Duration::from_mins(2),
            "the apply never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counts_of(body: &[u8]) -> (usize, serde_json::Value) {
    let d: serde_json::Value = serde_json::from_slice(body).expect("an ApplyDetail");
    let instances = d["instances"].as_array().map_or(0, Vec::len);
    (instances, d["counts"].clone())
}

/// Applies the fan-out with the server up, timing the apply's page while
/// it runs when `timed`; the apply id.
fn big_apply(
    served: &Served,
    base: &Path,
    root: &Path,
    bus: &Path,
    n: usize,
    timed: bool,
) -> String {
    let dir = workflow(base, "fan", &fan_out_toml(n));
    let start = Instant::now();
    let mut child = apply_command(&dir, root, &["--max-parallel", "64"])
        .spawn()
        .expect("conductor apply starts");
    let id = wait_apply_id(bus, "fan");
    let path = format!("/api/v1/projects/{PROJECT}/applies/{id}");
    let mut during = String::new();
    while child.try_wait().expect("wait").is_none() {
        if timed {
            let at = start.elapsed();
            let (took, body) = served.get(&path);
            let (_, counts) = counts_of(&body);
            let _ = write!(
                during,
                "\n  at {:.1} s: {:.0} ms, {} KiB, done {} running {}",
                at.as_secs_f64(),
                ms(took),
                body.len() / 1024,
                counts["done"],
                counts["running"],
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let wall = start.elapsed();
    let s = summary(&dir);
    assert_eq!(s["counts"]["done"], n, "{}", s["counts"]);
    println!(
        "apply of {n} instances (agent `true`, --max-parallel 64) with the server up: {:.1} s",
        wall.as_secs_f64()
    );
    if timed {
        println!("serve_apply_{n}/get_while_running (each GET of the apply as it ran):{during}");
    }
    id
}

fn apply_page(served: &Served, id: &str, n: usize) {
    const RUNS: usize = 5;
    let path = format!("/api/v1/projects/{PROJECT}/applies/{id}");
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..RUNS {
        let (took, body) = served.get(&path);
        let (instances, _) = counts_of(&body);
        assert_eq!(instances, n, "every instance in the ApplyDetail");
        size = body.len();
        times.push(took);
    }
    let each: Vec<String> = times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
    println!(
        "serve_apply_{n}/get_json: median {:.0} ms of {RUNS} (each ms: {}), {} KiB of JSON; \
         server VmRSS {}",
        ms(median(times)),
        each.join(" "),
        size / 1024,
        served.proc_status("VmRSS").map_or("?".into(), mib),
    );
    match Browser::start() {
        None => println!("serve_apply_{n}/browser_render: skipped: no chromedriver"),
        Some(browser) => {
            let url = format!("{}/#/apply/{PROJECT}/{id}", served.base);
            let times: Vec<Duration> = (0..3).map(|_| browser.render(&url, n)).collect();
            let each: Vec<String> = times.iter().map(|t| format!("{:.0}", ms(*t))).collect();
            println!(
                "serve_apply_{n}/browser_render: navigation to the page showing all {n} (its header counts them, the graph draws the boxes in view): median \
                 {:.0} ms of 3 (each ms: {}) (bar: 1 s); in the page, once: {}; server VmRSS {}",
                ms(median(times)),
                each.join(" "),
                browser.breakdown(&path, id),
                served.proc_status("VmRSS").map_or("?".into(), mib),
            );
        }
    }
}

/// A headless Chromium under its own chromedriver (as
/// `tests/serve_browser.rs` starts it).
struct Browser {
    driver: Child,
    client: Option<fantoccini::Client>,
    rt: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Option<Self> {
        let driver_bin = Path::new("/usr/bin/chromedriver");
        if !driver_bin.exists() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile folder");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display()),
            ]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let mut builder = fantoccini::ClientBuilder::rustls().expect("a TLS client");
            builder.capabilities(caps.clone());
            match rt.block_on(builder.connect(&url)) {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no WebDriver session: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        Some(Self {
            driver,
            client: Some(client),
            rt,
            _profile: profile,
        })
    }

    fn client(&self) -> &fantoccini::Client {
        self.client.as_ref().expect("a session until dropped")
    }

    /// From navigating to `url` to the page showing its `want` instances:
    /// the header counting them all and the graph drawn (a big graph
    /// draws the boxes in view, the others as they scroll into it).
    fn render(&self, url: &str, want: usize) -> Duration {
        self.rt
            .block_on(self.client().goto("about:blank"))
            .expect("a blank page");
        let script = format!(
            "const c = document.querySelector('#counts'); \
             return !!c && c.innerText.includes('/{want}') \
             && document.querySelectorAll('#dag [data-instance]').length > 0 ? {want} : 0"
        );
        let start = Instant::now();
        self.rt.block_on(self.client().goto(url)).expect("the page");
        loop {
            let shown = self
                .rt
                .block_on(self.client().execute(&script, Vec::new()))
                .ok()
                .and_then(|v| v.as_u64());
            if shown == Some(u64::try_from(want).expect("fits")) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_mins(2),
                "the page never showed {want} instances (last: {shown:?})"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Where the page's time goes, measured in the page itself on the apply
/// already shown: fetching the `ApplyDetail` (the server building it
/// included), `JSON.parse`, the page's own `renderDag`, the layout it
/// forces, and the next frame (paint).
const BREAKDOWN: &str = r"
const [path, p, a] = arguments;
const done = arguments[arguments.length - 1];
(async () => {
  const t0 = performance.now();
  const text = await (await fetch(path)).text();
  const t1 = performance.now();
  const d = JSON.parse(text);
  const t2 = performance.now();
  const dag = document.querySelector('#dag');
  renderDag(dag, d, p, a);
  const t3 = performance.now();
  void document.body.offsetHeight;
  const t4 = performance.now();
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  const t5 = performance.now();
  done([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]);
})().catch(e => done(String(e)));
";

impl Browser {
    fn breakdown(&self, path: &str, id: &str) -> String {
        let args = vec![path.into(), PROJECT.into(), id.into()];
        match self
            .rt
            .block_on(self.client().execute_async(BREAKDOWN, args))
        {
            Ok(serde_json::Value::Array(t)) => {
                let t: Vec<f64> = t.iter().filter_map(serde_json::Value::as_f64).collect();
                format!(
                    "fetch {:.0} ms, JSON.parse {:.0} ms, renderDag {:.0} ms, layout {:.0} ms, \
                     next frame {:.0} ms",
                    t[0], t[1], t[2], t[3], t[4]
                )
            }
            other => format!("not measured: {other:?}"),
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

/// What one followed stream received.
enum Seen {
    Apply { stream: usize, bytes: usize },
    Bus { index: usize, at: Instant },
}

fn follow_memory(served: &Served, bus: &Path, id: &str, n: usize, secs: u64) {
    const EVERY: Duration = Duration::from_secs(5);
    let (tx, rx) = mpsc::channel();
    for stream in 0..2 {
        let to_apply = tx.clone();
        follow(
            served,
            &format!("/api/v1/projects/{PROJECT}/applies/{id}/stream"),
            move |_, data| {
                to_apply
                    .send(Seen::Apply {
                        stream,
                        bytes: data.len(),
                    })
                    .is_ok()
            },
        );
        let to_bus = tx.clone();
        follow(
            served,
            &format!("/api/v1/projects/{PROJECT}/messages/stream"),
            move |at, data| match body_index(data, "follow-") {
                Some(index) => to_bus.send(Seen::Bus { index, at }).is_ok(),
                None => true,
            },
        );
    }
    drop(tx);
    let stop = Arc::new(AtomicBool::new(false));
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let writer = {
        let (stop, sent, bus) = (Arc::clone(&stop), Arc::clone(&sent), bus.to_path_buf());
        std::thread::spawn(move || {
            let mut w = BusWriter::open(&bus).expect("open the bus");
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let msg = record(format!("follow-{i}"));
                sent.lock().expect("not poisoned").push(Instant::now());
                w.append(&msg).expect("append");
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let pid = served.child.id();
    let (cpu_before, start) = (cpu_ticks(pid), Instant::now());
    let mut rss = Vec::new();
    for k in 0..=secs / 5 {
        let due = start + EVERY * u32::try_from(k).expect("fits");
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        rss.push(proc_status(pid, "VmRSS").unwrap_or(0));
    }
    let wall = start.elapsed();
    let cpu = cpu_ticks(pid) - cpu_before;
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("the writer ends");
    let threads = proc_status(pid, "Threads").unwrap_or(0);
    let hwm = proc_status(pid, "VmHWM").unwrap_or(0);
    // Give the last records a moment to arrive.
    std::thread::sleep(Duration::from_millis(200));
    let sent = sent.lock().expect("not poisoned").clone();
    let (mut apply_events, mut apply_bytes) = ([0usize; 2], 0usize);
    let mut latencies = Vec::new();
    for seen in rx.try_iter() {
        match seen {
            Seen::Apply { stream, bytes } => {
                apply_events[stream] += 1;
                apply_bytes = apply_bytes.max(bytes);
            }
            Seen::Bus { index, at } => latencies.push(at - sent[index]),
        }
    }
    let arrived = latencies.len();
    let tick_ms = 1000 / clock_ticks_per_second();
    let cpu_ms = cpu * tick_ms;
    // At most about 25 of the samples, evenly spaced, for a long follow.
    let every = rss.len().div_ceil(25);
    let all: Vec<String> = rss
        .iter()
        .step_by(every)
        .map(|k| mib(*k).trim_end_matches(" MiB").to_owned())
        .collect();
    println!(
        "serve_follow: {:.0} s, 2 apply streams ({} instances) + 2 bus streams, a record every \
         100 ms: server VmRSS first {}, max {}, last {} (every {} s, MiB: {}); VmHWM {}; \
         threads {threads}; server CPU {:.1} s ({:.0} % of one core); apply events per stream \
         {:?}, largest {} KiB; bus records sent {}, arrived {arrived} of {} expected, latency {}",
        wall.as_secs_f64(),
        n,
        mib(rss[0]),
        mib(rss.iter().copied().max().unwrap_or(0)),
        mib(rss[rss.len() - 1]),
        5 * every,
        all.join(" "),
        mib(hwm),
        Duration::from_millis(cpu_ms).as_secs_f64(),
        Duration::from_millis(cpu_ms).as_secs_f64() * 100.0 / wall.as_secs_f64(),
        apply_events,
        apply_bytes / 1024,
        sent.len(),
        sent.len() * 2,
        percentiles(latencies),
    );
}

/// The positional arguments cargo passes on (`cargo bench --bench serve -- NAME`).
fn filters() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

fn wanted(name: &str) -> bool {
    let f = filters();
    f.is_empty() || f.iter().any(|f| name.contains(f.as_str()))
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --benches`: nothing here is a pass/fail test.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let n = usize::try_from(env_number("CONDUCTOR_BENCH_SERVE_INSTANCES", 10_000))
        .expect("a size that fits");
    let secs = env_number("CONDUCTOR_BENCH_FOLLOW_SECS", 60);
    let base = tempfile::tempdir().expect("a temp dir");
    let root = base.path().join("runs");
    tiny_apply(base.path(), &root);
    let bus = root.join(PROJECT).join("PROJECT-MESSAGE-BUS.md");
    assert!(bus.is_file(), "the apply made the project bus");
    let served = Served::start(&root);
    println!(
        "conductor serve started: VmRSS {}",
        served.proc_status("VmRSS").map_or("?".into(), mib)
    );
    if wanted("serve_bus_to_page") {
        bus_to_page(&served, &bus);
    }
    let page = wanted(&format!("serve_apply_{n}"));
    if page || wanted("serve_follow") {
        let id = big_apply(&served, base.path(), &root, &bus, n, page);
        if page {
            apply_page(&served, &id, n);
        }
        if wanted("serve_follow") {
            follow_memory(&served, &bus, &id, n, secs);
        }
    }
}
