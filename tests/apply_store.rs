//! What an apply leaves on disk and says: the run store layout, the agent's
//! environment and preamble (every advertised command run from inside an
//! agent), secrets never written anywhere, items that cannot escape the
//! runs root, `[success]`, reports, and exit code 3.

use crate::apply_support::{Flow, one_node, st, state};
use crate::test_builder::Test;

#[test]
fn the_run_store_has_the_seed_layout() {
    let ran = Test::new()
        .workflow(one_node(r#""--done-after", "2""#, "{}"))
        .apply()
        .run();
    let task_dir = std::path::PathBuf::from(ran.instance("n")["task_dir"].as_str().unwrap());
    assert_eq!(task_dir.parent().unwrap(), ran.root().join("t"));
    let task_id = task_dir.file_name().unwrap().to_str().unwrap();
    assert!(
        regex::Regex::new(r"^task-\d{8}-\d{6}-[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$")
            .unwrap()
            .is_match(task_id),
        "{task_id}"
    );
    for f in ["TASK.md", "TASK-MESSAGE-BUS.md", "DONE"] {
        assert!(task_dir.join(f).is_file(), "no {f}");
    }
    let mut runs: Vec<_> = std::fs::read_dir(task_dir.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2);
    for (i, run) in runs.iter().enumerate() {
        for f in [
            "run-info.yaml",
            "prompt.md",
            "output.md",
            "agent-stdout.txt",
            "agent-stderr.txt",
        ] {
            assert!(run.join(f).is_file(), "no {f} in {}", run.display());
        }
        let info = conductor::store::RunInfo::read(&run.join("run-info.yaml")).unwrap();
        assert_eq!(
            (
                info.version,
                info.project_id.as_str(),
                info.agent.as_str(),
                info.status.as_str()
            ),
            (1, "t", "command", "completed")
        );
        assert_eq!(info.run_id, run.file_name().unwrap().to_str().unwrap());
        assert_eq!(info.task_id, task_id);
        assert!(info.pid > 0 && info.pgid == info.pid && info.exit_code == 0);
        assert!(info.end_time > info.start_time);
        assert_eq!(
            (info.workflow.as_deref(), info.node.as_deref()),
            (Some("t"), Some("n"))
        );
        assert_eq!(info.iteration, Some(u32::try_from(i + 1).unwrap()));
        for path in [
            &info.prompt_path,
            &info.output_path,
            &info.stdout_path,
            &info.stderr_path,
        ] {
            assert!(std::path::Path::new(path.as_ref().unwrap()).is_absolute());
        }
        let output = std::fs::read_to_string(run.join("output.md")).unwrap();
        assert_eq!(output, format!("fake agent answered call {}\n", i + 1));
    }
    let second = conductor::store::RunInfo::read(&runs[1].join("run-info.yaml")).unwrap();
    assert_eq!(
        second.previous_run_id.as_deref(),
        runs[0].file_name().unwrap().to_str()
    );
    assert_eq!(second.stop_reason.as_deref(), Some("done_file"));
    let kinds: Vec<String> = ran.task_kinds();
    assert_eq!(kinds, ["RUN_START", "RUN_STOP", "RUN_START", "RUN_STOP"]);
    let stop = &ran.records("TASK-MESSAGE-BUS.md")[3];
    for k in [
        "node",
        "iteration",
        "exit_code",
        "stop_reason",
        "duration_ms",
    ] {
        assert!(
            stop["meta"][k].is_string(),
            "RUN_STOP meta lacks {k}: {stop}"
        );
    }
}

#[test]
fn output_md_written_by_the_agent_wins_and_streams_are_parsed() {
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.writer]
kind = "command"
command = ["sh", "-c", "echo stdout text; echo 'the real answer' > \"$JRUN_RUN_FOLDER/output.md\""]
[agents.claude]
kind = "claude"
command = ["conductor"]
args = ["__fake-agent", "--stream", "claude", "--say", "streamed answer"]
[defaults]
stop = { exit_zero = true }
[nodes.w]
agent = "writer"
prompt = "p"
[nodes.c]
agent = "claude"
prompt = "p"
[nodes.show]
needs = ["w", "c"]
agent = "writer"
prompt = "{{ needs.w.output }}{{ needs.c.output }}"
"#,
        )
        .apply()
        .run();
    let out_of = |key: &str| {
        let dir = std::path::PathBuf::from(ran.instance(key)["task_dir"].as_str().unwrap());
        let run = std::fs::read_dir(dir.join("runs"))
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path();
        std::fs::read_to_string(run.join("output.md")).unwrap()
    };
    assert_eq!(out_of("w"), "the real answer\n");
    assert_eq!(out_of("c"), "streamed answer");
    let prompt = ran
        .files()
        .into_iter()
        .find(|(p, t)| p.ends_with("prompt.md") && t.contains("streamed answer"))
        .map(|(_, t)| t)
        .unwrap();
    assert!(
        prompt.ends_with("the real answer\nstreamed answer\n"),
        "{prompt}"
    );
}

#[test]
fn every_command_the_preamble_advertises_works_inside_an_agent() {
    // The agent runs each indented command of its prompt's preamble.
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.obedient]
kind = "command"
command = ["sh", "-c", "sed -n '/^---$/q; s/^    //p' | while read -r line; do sh -c \"$line\" || exit 9; done; env > env.txt"]
[nodes.n]
agent = "obedient"
prompt = "follow the preamble"
workdir = "wd"
"#,
        )
        .dir("wd")
        .apply()
        .run();
    assert_eq!(ran.state("n"), st("done", "done_file", 1));
    let kinds: Vec<String> = ran.task_kinds();
    assert_eq!(kinds, ["RUN_START", "PROGRESS", "FACT", "RUN_STOP"]);
    let env = std::fs::read_to_string(ran.path().join("wd/env.txt")).unwrap();
    for var in [
        "JRUN_PROJECT_ID=t",
        "JRUN_TASK_ID=task-",
        "JRUN_ID=000001-",
        "JRUN_RUNS_DIR=",
        "JRUN_MESSAGE_BUS=",
        "JRUN_TASK_FOLDER=",
        "JRUN_RUN_FOLDER=",
        "CONDUCTOR_WORKFLOW=t",
        "CONDUCTOR_NODE=n",
        "CONDUCTOR_ITEM=",
        "CONDUCTOR_ITERATION=1",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(var)),
            "agent env lacks {var}"
        );
    }
    let bin = assert_cmd::cargo::cargo_bin("conductor");
    let path = env.lines().find_map(|l| l.strip_prefix("PATH=")).unwrap();
    assert_eq!(
        path.split(':').next().unwrap(),
        bin.parent().unwrap().to_str().unwrap(),
        "conductor's folder comes first on PATH"
    );
}

#[test]
fn api_keys_never_reach_other_agents_or_anything_written() {
    let secret = "sk-ant-THIS-IS-SECRET-0123456789";
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.tool]
kind = "command"
command = ["sh", "-c", "env; echo \"key=${ANTHROPIC_API_KEY:-unset}\" >&2"]
[nodes.n]
agent = "tool"
prompt = "The key is {{ env['ANTHROPIC' ~ '_API_KEY'] | default('absent') }}; {{ env | items | list | reverse }}."
stop = { exit_zero = true }
"#,
        )
        .apply()
        .env("ANTHROPIC_API_KEY", secret)
        .env("RUST_LOG", "debug")
        .stdout_lacks(secret)
        .stderr_lacks(secret)
        .run();
    let files = ran.files();
    assert!(files.iter().any(|(p, _)| p.ends_with("prompt.md")));
    for (path, text) in &files {
        assert!(!text.contains(secret), "{} holds the key", path.display());
    }
    let err = files
        .iter()
        .find(|(p, _)| p.ends_with("agent-stderr.txt"))
        .unwrap();
    assert_eq!(err.1, "key=unset\n");
    // However a template asks, `env` holds no key.
    let prompt = files
        .iter()
        .find(|(p, _)| p.ends_with("prompt.md"))
        .unwrap();
    assert!(prompt.1.contains("The key is absent;"), "{}", prompt.1);
    assert!(!prompt.1.contains("TERCES"), "{}", prompt.1);
}

#[test]
fn a_template_that_reads_a_key_is_refused_and_told_how_to_give_it() {
    Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.tool]
kind = "command"
command = ["cat"]
api_key_env = "MY_SERVICE_KEY"
[nodes.n]
agent = "tool"
prompt = "The key is {{ env.ANTHROPIC_API_KEY | reverse }}."
env = { OPENAI_API_KEY = "{{ env.ANTHROPIC_API_KEY }}" }
stop = { exit_zero = true, expr = "env.MY_SERVICE_KEY == 'x'" }
"#,
        )
        .args(["validate", "flow.toml"])
        .env("ANTHROPIC_API_KEY", "sk-ant-THIS-IS-SECRET-0123456789")
        .status(2)
        .stderr_has("conductor::secret_in_template")
        .stderr_has("`env.ANTHROPIC_API_KEY` holds an API key, which templates cannot read")
        .stderr_has("`env.MY_SERVICE_KEY` holds an API key")
        .stderr_has("api_key_env")
        .stderr_has("flow.toml:9:")
        .stderr_has("flow.toml:10:")
        .stderr_lacks("THIS-IS-SECRET")
        .run();
}

#[test]
fn items_cannot_write_outside_the_runs_root() {
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.a]
kind = "command"
command = ["conductor", "__fake-agent", "--done-after", "1"]
[nodes.n]
agent = "a"
for_each = ["../../etc", "../x", "/abs/path", "..", "a/../../b"]
prompt = "{{ item }}"
"#,
        )
        .apply()
        .run();
    let project = ran.root().join("t");
    for i in ran.json()["instances"].as_array().unwrap() {
        let dir = std::path::Path::new(i["task_dir"].as_str().unwrap());
        assert_eq!(dir.parent().unwrap(), project, "{}", dir.display());
        assert!(dir.join("DONE").is_file());
    }
    let mut top: Vec<String> = std::fs::read_dir(ran.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["flow.toml", "runs"]);
}

#[test]
fn success_commands_decide_the_exit_code() {
    let base = one_node(r#""--done-after", "1""#, "{}");
    let passed = Test::new()
        .workflow(format!(
            "{base}\n[success]\ncommands = [\"test -f flow.toml\"]\n"
        ))
        .apply()
        .run();
    assert_eq!(passed.json()["success"][0]["exit_code"], 0);
    let failed = Test::new()
        .workflow(format!("{base}\n[success]\ncommands = [\"exit 4\"]\n"))
        .apply()
        .status(1)
        .run();
    assert_eq!(failed.json()["status"], "failed");
    assert_eq!(failed.json()["success"][0]["exit_code"], 4);
}

#[test]
fn junit_has_one_testcase_per_instance() {
    let test = Test::new().workflow(
        r#"version = 1
name = "t"
[agents.ok]
kind = "command"
command = ["conductor", "__fake-agent", "--done-after", "1"]
[agents.bad]
kind = "command"
command = ["conductor", "__fake-agent", "--exit", "2"]
[nodes.good]
agent = "ok"
for_each = ["x", "y"]
prompt = "p"
[nodes.broken]
agent = "bad"
prompt = "p"
stop = { max_iterations = 2 }
[nodes.after]
agent = "ok"
needs = ["broken"]
prompt = "p"
"#,
    );
    let report = test.path().join("junit.xml");
    let _ran = test.apply().arg("--junit").arg(&report).status(1).run();
    let xml = std::fs::read_to_string(report).unwrap();
    assert_eq!(xml.matches("<testcase").count(), 4, "{xml}");
    assert!(xml.contains(r#"name="good[x]""#) && xml.contains(r#"classname="good""#));
    assert!(
        xml.contains(r#"<failure message="max_iterations""#),
        "{xml}"
    );
    assert!(xml.contains("<skipped"), "{xml}");
}

#[test]
fn a_missing_agent_or_unwritable_root_is_exit_3_before_anything_runs() {
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.ghost]
kind = "command"
command = ["no-such-program-anywhere"]
[nodes.n]
agent = "ghost"
prompt = "p"
"#,
        )
        .apply()
        .status(3)
        .stderr_has("`no-such-program-anywhere` is not found on PATH")
        .run();
    assert!(!ran.root().join("t").read_dir().is_ok_and(|mut d| {
        d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("task-")))
    }));

    Test::new()
        .workflow(one_node(r#""--done-after", "1""#, "{}"))
        .file("file", "")
        .args(["apply", "flow.toml", "--root", "file/runs"])
        .status(3)
        .stderr_has("runs root is not writable")
        .run();
}

#[test]
fn a_template_error_at_run_time_fails_the_node_with_the_reason() {
    let ran = Test::new()
        .workflow(
            r#"version = 1
name = "t"
[agents.plan]
kind = "command"
command = ["conductor", "__fake-agent", "--json", '{"n": 1}']
[agents.echo]
kind = "command"
command = ["cat"]
[defaults]
stop = { exit_zero = true }
[nodes.a]
agent = "plan"
prompt = "p"
output = { format = "json" }
[nodes.b]
agent = "echo"
needs = ["a"]
prompt = "{{ needs.a.json.missing.deeper }}"
"#,
        )
        .apply()
        .status(1)
        .stderr_has("cannot render the prompt of `b`")
        .run();
    assert_eq!(ran.state("b"), st("failed", "render_error", 0));
}

#[test]
fn an_agent_program_deleted_mid_apply_fails_its_node_with_a_record() {
    let test = Test::new().workflow(
        r#"version = 1
name = "t"
[agents.remover]
kind = "command"
command = ["rm", "tool.sh"]
[agents.tool]
kind = "command"
command = ["./tool.sh"]
[defaults]
stop = { exit_zero = true }
[nodes.a]
agent = "remover"
prompt = "p"
[nodes.b]
agent = "tool"
needs = ["a"]
prompt = "p"
"#,
    );
    let tool = test.path().join("tool.sh");
    std::fs::write(&tool, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ran = test.apply().status(1).run();
    assert_eq!(ran.state("a"), st("done", "exit_zero", 1));
    assert_eq!(ran.state("b"), st("failed", "agent_missing", 1));
    let crash = ran
        .records("TASK-MESSAGE-BUS.md")
        .into_iter()
        .find(|r| r["type"] == "RUN_CRASH")
        .unwrap();
    assert!(
        crash["body"]
            .as_str()
            .unwrap()
            .contains("`./tool.sh` is not an executable file")
    );
    let infos: Vec<String> = ran
        .files()
        .into_iter()
        .filter(|(p, _)| p.ends_with("run-info.yaml"))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(infos.len(), 2, "every run folder has its record");
    assert!(infos.iter().any(|t| t.contains("status: failed")));
}

#[test]
fn on_a_terminal_each_running_instance_shows_its_latest_bus_message_and_tool_call() {
    // `script` (util-linux) gives conductor a pseudo-terminal, as a user's shell would.
    let flow = Flow::new(
        r#"version = 1
name = "t"
[agents.a]
kind = "command"
command = ["sh", "-c", "conductor bus post --type PROGRESS --body 'halfway there'; sleep 1.5; touch \"$JRUN_TASK_FOLDER/DONE\""]
[agents.g]
kind = "gemini"
command = ["sh", "-c", "echo '{\"type\":\"tool_use\",\"tool_name\":\"run_shell_command\",\"parameters\":{\"command\":\"make   test\"}}'; sleep 1.5; touch \"$JRUN_TASK_FOLDER/DONE\""]
[nodes.n]
agent = "a"
prompt = "p"
[nodes.tools]
agent = "g"
prompt = "p"
"#,
    );
    // Wide enough that no live line is cut.
    let text = crate::apply_support::apply_on_a_terminal(&flow, 200, "");
    assert!(text.contains("iteration 1/10 (a)"), "{text}");
    assert!(text.contains("PROGRESS: halfway there"), "{text}");
    // A CLI agent's latest tool call, from its event stream.
    assert!(text.contains("run_shell_command: make test"), "{text}");
    assert!(text.contains("t: done"), "{text}");
}

#[test]
fn the_default_runs_root_stays_out_of_git() {
    let ran = Test::new()
        .workflow(one_node(r#""--done-after", "1""#, "{}"))
        .env_remove("CONDUCTOR_ROOT")
        .args(["apply", "flow.toml"])
        .run();
    let dir = ran.path();
    assert!(
        dir.join(".conductor/runs/t/PROJECT-MESSAGE-BUS.md")
            .is_file()
    );
    let git = |args: &[&str]| {
        // The user's git configuration (excludes, untracked-file display)
        // is not the test's.
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["init", "-q"]);
    assert_eq!(git(&["status", "--porcelain"]), "?? flow.toml\n");
}

#[test]
fn the_run_store_is_readable_by_its_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let ran = Test::new()
        .workflow(one_node(r#""--done-after", "1""#, "{}"))
        .env_remove("CONDUCTOR_ROOT")
        .args(["apply", "flow.toml"])
        .run();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let runs = ran.path().join(".conductor/runs");
    for dir in [runs.clone(), runs.join("t")] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    // A project folder an older conductor left open is closed.
    std::fs::set_permissions(runs.join("t"), std::fs::Permissions::from_mode(0o755)).unwrap();
    ran.then()
        .args(["apply", "flow.toml", "--force"])
        .env_remove("CONDUCTOR_ROOT")
        .run();
    assert_eq!(mode(&runs.join("t")), 0o700);
}

/// Makes what stands where a bus goes.
type Make = fn(&std::path::Path);

#[test]
fn a_project_bus_that_cannot_be_written_is_exit_3_before_any_agent_starts() {
    // A folder, a FIFO (an open for writing would wait for a reader for
    // ever) and a symlink out of the runs root stand where the bus goes.
    let workflow = one_node(r#""--done-after", "1", "--pid-file", "started""#, "{}");
    let make: [(&str, Make); 3] = [
        ("a folder", |p| std::fs::create_dir(p).unwrap()),
        ("a FIFO", |p| {
            let ok = std::process::Command::new("mkfifo")
                .arg(p)
                .status()
                .unwrap();
            assert!(ok.success());
        }),
        ("a symlink", |p| {
            std::os::unix::fs::symlink("/tmp/elsewhere-bus.md", p).unwrap();
        }),
    ];
    for (what, make) in make {
        let test = Test::new().workflow(&workflow);
        let bus = test.root().join("t/PROJECT-MESSAGE-BUS.md");
        std::fs::create_dir_all(bus.parent().unwrap()).unwrap();
        make(&bus);
        let ran = test
            .apply()
            .status(3)
            .timeout(std::time::Duration::from_secs(30))
            .stderr_has("the project bus cannot be written")
            .stderr_has("help: the project bus must be a regular file")
            .run();
        assert!(
            !ran.path().join("started").exists(),
            "{what}: an agent started"
        );
    }
}

#[test]
fn a_run_store_that_cannot_take_a_write_is_exit_3_not_a_missing_agent() {
    // A file-size limit (util-linux `prlimit`) stands in for a full disk:
    // the second iteration's prompt.md is larger than any file may grow.
    let big = "x".repeat(64 << 10);
    let flow = Flow::new(
        &one_node(r#""--say", "not yet""#, "{ max_iterations = 3 }").replace(
            "prompt = \"work\"",
            &format!("prompt = \"{{% if iteration > 1 %}}{big}{{% endif %}}work\""),
        ),
    );
    let out = std::process::Command::new("prlimit")
        .arg("--fsize=32768")
        .arg(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(flow.path())
        .args(["apply", "flow.toml", "--json", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        state(&summary, "n"),
        st("failed", "store_error", 2),
        "{summary:#}"
    );
    let error = crate::apply_support::instance(&summary, "n")["error"].to_string();
    assert!(
        error.contains("prompt.md") && error.contains("File too large"),
        "{error}"
    );
    assert!(stderr.contains("stopping: store_error"), "{stderr}");
    // No run is left marked running.
    for info in flow.files_named("run-info.yaml") {
        let text = std::fs::read_to_string(&info).unwrap();
        assert!(
            !text.contains("status: running"),
            "{}: {text}",
            info.display()
        );
    }
}

/// A small tmpfs mounted for one test, unmounted when it ends.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(at: std::path::PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .unwrap();
        assert!(ok.success(), "mount a tmpfs (this test needs root)");
        Self(at)
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "mounts a tmpfs, so it needs root: .ci/run runs it"]
fn a_full_disk_is_exit_3_and_leaves_no_run_marked_running() {
    // Once its run is recorded, the agent fills the disk the runs root is
    // on: its own output fails, its run's last record must still land (in
    // place of the `running` one), and the next iteration cannot start.
    let flow = Flow::new(&crate::apply_support::one_node_command(
        r#""sh", "-c", "while [ ! -e \"$JRUN_RUN_FOLDER/run-info.yaml\" ]; do sleep 0.01; done; head -c 4194304 /dev/zero""#,
        "{ exit_zero = true, max_iterations = 3 }",
    ));
    let disk = TinyDisk::mount(flow.path().join("disk"), "256k");
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(flow.path())
        .args(["apply", "flow.toml", "--json", "--root"])
        .arg(disk.0.join("runs"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state(&summary, "n").1, "store_error", "{summary:#}");
    let error = crate::apply_support::instance(&summary, "n")["error"].to_string();
    assert!(error.contains("No space left on device"), "{error}");
    let mut infos = 0;
    for e in walk(&disk.0) {
        if e.ends_with("run-info.yaml") {
            infos += 1;
            let text = std::fs::read_to_string(&e).unwrap();
            assert!(!text.contains("status: running"), "{}: {text}", e.display());
        }
    }
    assert!(infos > 0, "the first run's record landed");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
