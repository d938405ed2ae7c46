//! `conductor watch` (docs/watch.md) with real file edits and
//! real signals: an edited input re-runs its node and no other, an edit to
//! the workflow restarts the running instance it changes and leaves the
//! others running, an agent's edits to its own inputs do not loop, a broken
//! edit prints its diagnostic and the watch goes on, Ctrl-C ends it (130).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::apply_support::Flow;

/// Each agent logs `instance iteration` to calls.log; `slow` ones wait
/// for a `release` file first.
const AGENTS: &str = r#"version = 1
name = "wt"
[agents.log]
kind = "command"
command = ["sh", "-c", "echo \"$CONDUCTOR_INSTANCE $CONDUCTOR_ITERATION\" >> calls.log; sed '1,/^---$/d'"]
[agents.slow]
kind = "command"
command = ["sh", "-c", "echo \"$CONDUCTOR_INSTANCE $CONDUCTOR_ITERATION\" >> calls.log; while [ ! -e release ]; do sleep 0.05; done; sed '1,/^---$/d'"]
[defaults]
agent = "log"
stop = { exit_zero = true, max_iterations = 1 }
"#;

struct Watch {
    flow: Flow,
    child: Child,
}

impl Watch {
    fn start(nodes: &str, files: &[(&str, &str)]) -> Self {
        let flow = Flow::new(&format!("{AGENTS}\n{nodes}"));
        for (name, text) in files {
            let path = flow.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let stderr = std::fs::File::create(flow.path().join("watch.log")).unwrap();
        let child = Command::new(assert_cmd::cargo::cargo_bin("conductor"))
            .current_dir(flow.path())
            .args(["watch", "flow.toml", "--grace", "300ms", "--root"])
            .arg(flow.root())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Self { flow, child }
    }

    fn path(&self) -> &Path {
        self.flow.path()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("watch.log")).unwrap_or_default()
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the log shows `text` `n` times.
    fn wait_log(&self, text: &str, n: usize) {
        let start = Instant::now();
        while self.log().matches(text).count() < n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {n}x {text:?} in:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(name), text).unwrap();
    }

    /// Ctrl-C; the exit code.
    fn interrupt(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        self.child.wait().unwrap().code()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const IDLE: &str = "watching for changes";

#[test]
fn an_edited_input_reruns_its_node_and_no_other() {
    let w = Watch::start(
        r#"
[nodes.a]
prompt = "a"
inputs = ["a.txt"]
[nodes.b]
prompt = "b"
inputs = ["b.txt"]
"#,
        &[("a.txt", "1"), ("b.txt", "1")],
    );
    w.wait_log(IDLE, 1);
    w.write("a.txt", "2");
    w.wait_log("a.txt changed: running a", 1);
    w.wait_log(IDLE, 2);
    // The first apply ran a and b in parallel; then a alone.
    let calls = w.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[2], "a 1");
    // Writing the same content again changes nothing that counts.
    w.write("a.txt", "2");
    w.wait_log("a.txt changed: everything is up to date", 1);
    w.wait_log(IDLE, 3);
    assert_eq!(w.calls().len(), 3);
    assert_eq!(w.interrupt(), Some(130));
}

/// The calls made after the first `n`, sorted.
fn calls_after(w: &Watch, n: usize) -> Vec<String> {
    let mut calls = w.calls().split_off(n);
    calls.sort();
    calls
}

#[test]
fn an_edited_new_or_deleted_input_reruns_its_node_and_what_needs_it() {
    let w = Watch::start(
        r#"
[nodes.a]
prompt = "a"
inputs = ["src/*.txt"]
[nodes.c]
prompt = "c"
needs = ["a"]
[nodes.b]
prompt = "b"
inputs = ["b.txt"]
"#,
        &[("src/x.txt", "1"), ("b.txt", "1")],
    );
    w.wait_log(IDLE, 1);
    assert_eq!(w.calls().len(), 3);
    // An edit: a, and c after it.
    w.write("src/x.txt", "2");
    w.wait_log("src/x.txt changed: running a, c", 1);
    w.wait_log(IDLE, 2);
    assert_eq!(calls_after(&w, 3), ["a 1", "c 1"], "{}", w.log());
    // A new file its glob matches.
    w.write("src/y.txt", "1");
    w.wait_log(IDLE, 3);
    assert_eq!(calls_after(&w, 5), ["a 1", "c 1"], "{}", w.log());
    // A deleted one.
    std::fs::remove_file(w.path().join("src/x.txt")).unwrap();
    w.wait_log(IDLE, 4);
    assert_eq!(calls_after(&w, 7), ["a 1", "c 1"], "{}", w.log());
    // The other node's input: b alone.
    w.write("b.txt", "2");
    w.wait_log(IDLE, 5);
    assert_eq!(calls_after(&w, 9), ["b 1"], "{}", w.log());
    assert_eq!(w.interrupt(), Some(130));
}

#[test]
fn a_new_file_a_for_each_glob_finds_is_planned_and_run() {
    let w = Watch::start(
        r#"
[nodes.n]
prompt = "n"
for_each = { glob = "items/*.txt" }
inputs = ["{{ item }}"]
"#,
        &[("items/notes.md", "not an item")],
    );
    // Nothing to run yet: the glob finds nothing, and is watched all the same.
    w.wait_log(IDLE, 1);
    w.write("items/a.txt", "1");
    w.wait_log("items/a.txt changed: running n[items/a.txt]", 1);
    w.wait_log(IDLE, 2);
    w.write("items/b.txt", "1");
    w.wait_log("items/b.txt changed: running n[items/b.txt]", 1);
    w.wait_log(IDLE, 3);
    // An edit of the first: that instance alone.
    w.write("items/a.txt", "2");
    w.wait_log("items/a.txt changed: running n[items/a.txt]", 2);
    w.wait_log(IDLE, 4);
    assert_eq!(
        w.calls(),
        ["n[items/a.txt] 1", "n[items/b.txt] 1", "n[items/a.txt] 1"]
    );
    assert_eq!(w.interrupt(), Some(130));
}

#[test]
fn a_workflow_edit_restarts_the_running_instance_it_changes_and_no_other() {
    let w = Watch::start(
        r#"
[nodes.one]
agent = "slow"
prompt = "one"
[nodes.two]
agent = "slow"
prompt = "two"
"#,
        &[],
    );
    let start = Instant::now();
    while w.calls().len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", w.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(w.path().join("flow.toml")).unwrap();
    w.write(
        "flow.toml",
        &text.replace("prompt = \"one\"", "prompt = \"one, again\""),
    );
    w.wait_log("flow.toml changed: restarting one", 1);
    let start = Instant::now();
    while w.calls().len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", w.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    w.write("release", "");
    w.wait_log(IDLE, 1);
    let mut calls = w.calls();
    calls.sort();
    assert_eq!(calls, ["one 1", "one 1", "two 1"], "two ran on, once");
    assert!(w.log().contains("(2 done, 0 failed"), "{}", w.log());
    // The restarted run got the new prompt.
    let prompts = w.flow.prompts();
    assert!(
        prompts.iter().any(|p| p.contains("one, again")),
        "{prompts:?}"
    );
    assert_eq!(w.interrupt(), Some(130));
}

#[test]
fn an_agent_editing_its_own_inputs_does_not_loop_the_watch() {
    let w = Watch::start(
        r#"
[agents.writer]
kind = "command"
command = ["sh", "-c", "echo \"$CONDUCTOR_INSTANCE $CONDUCTOR_ITERATION\" >> calls.log; date +%N >> notes.txt"]
[nodes.w]
agent = "writer"
prompt = "write notes"
inputs = ["notes.txt"]
[nodes.b]
prompt = "b"
inputs = ["b.txt"]
"#,
        &[("notes.txt", "start\n"), ("b.txt", "1")],
    );
    w.wait_log(IDLE, 1);
    // Bursts are handled in order: once b's edit has been applied, any
    // re-run w's own edit could have caused would have happened before.
    w.write("b.txt", "2");
    w.wait_log("changed: running b\n", 1);
    w.wait_log("b: done", 2);
    let mut calls = w.calls();
    calls.sort();
    assert_eq!(calls, ["b 1", "b 1", "w 1"], "{}", w.log());
    // A person's edit to notes.txt is a change.
    w.write("notes.txt", "by hand\n");
    w.wait_log("notes.txt changed: running w", 1);
    assert_eq!(w.interrupt(), Some(130));
}

#[test]
fn a_broken_edit_shows_its_diagnostic_and_the_watch_goes_on() {
    let w = Watch::start(
        r#"
[nodes.a]
prompt = "a"
"#,
        &[],
    );
    w.wait_log(IDLE, 1);
    let good = std::fs::read_to_string(w.path().join("flow.toml")).unwrap();
    w.write("flow.toml", &format!("{good}\nbroken [\n"));
    w.wait_log("the last good plan stays in force", 1);
    assert!(
        w.log().contains("flow.toml:"),
        "the diagnostic names the file: {}",
        w.log()
    );
    w.write(
        "flow.toml",
        &good.replace("prompt = \"a\"", "prompt = \"a2\""),
    );
    w.wait_log("flow.toml changed: running a", 1);
    w.wait_log(IDLE, 2);
    assert_eq!(w.calls(), ["a 1", "a 1"]);
    assert_eq!(w.interrupt(), Some(130));
}
