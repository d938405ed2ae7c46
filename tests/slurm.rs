//! The Slurm executor (`--executor slurm`, docs/distributed.md) on a real
//! Slurm cluster of three nodes on this machine (`.ci/slurm-cluster start`,
//! which `.ci/run` runs): units spread over the nodes with the outcomes of a
//! local apply, `needs` kept, Ctrl-C and timeouts reaching a `setsid`
//! grandchild on the worker, a node going down, a dispatcher killed (SIGKILL) and
//! run again, a budget shared by workers, and keys that never reach Slurm.
//! The tests take turns: one marks a node down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::apply_support::{Flow, alive, instance, pids, st, state, wait_for};

static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster, for one test at a time (one marks a node down).
fn turn() -> std::sync::MutexGuard<'static, ()> {
    CLUSTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The cluster's configuration; the test fails, saying how to start one,
/// when no cluster answers.
fn slurm_conf() -> String {
    let conf = std::env::var("SLURM_CONF")
        .unwrap_or_else(|_| "/tmp/conductor-slurm/slurm.conf".to_string());
    let ok = Command::new("squeue")
        .env("SLURM_CONF", &conf)
        .arg("--me")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no Slurm cluster answers at {conf}: start one with `.ci/slurm-cluster start` (.ci/run does)"
    );
    conf
}

fn slurm(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `conductor apply --executor slurm`, with the summary parsed.
fn apply_slurm(flow: &Flow, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    let out = flow
        .command(&["--executor", "slurm"])
        .args(extra)
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, summary)
}

fn spawn_slurm(flow: &Flow, extra: &[&str]) -> std::process::Child {
    Command::new(assert_cmd::cargo::cargo_bin("conductor"))
        .current_dir(flow.path())
        .args([
            "apply",
            "flow.toml",
            "--json",
            "--grace",
            "1s",
            "--executor",
            "slurm",
            "--root",
        ])
        .arg(flow.root())
        .args(extra)
        .env("SLURM_CONF", slurm_conf())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `job.json` of every task folder, by instance key.
fn jobs(flow: &Flow) -> BTreeMap<String, serde_json::Value> {
    flow.files_named("job.json")
        .into_iter()
        .map(|p| {
            let job: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            let spec: serde_json::Value =
                serde_json::from_slice(&std::fs::read(p.with_file_name("unit.json")).unwrap())
                    .unwrap();
            (spec["key"].as_str().unwrap().to_string(), job)
        })
        .collect()
}

/// The job ids of `flow`'s instances that Slurm still lists.
fn still_queued(flow: &Flow) -> Vec<String> {
    let queued = slurm(&["squeue", "--me", "--noheader", "--format=%i"]);
    let queued: BTreeSet<&str> = queued.lines().map(str::trim).collect();
    jobs(flow)
        .values()
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .filter(|id| queued.contains(id.as_str()))
        .collect()
}

/// The files a task folder holds, by name, without the executor's own.
fn task_files(flow: &Flow) -> BTreeSet<String> {
    let executor = ["unit.json", "events.jsonl", "outcome.json", "job.json"];
    flow.paths()
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(flow.root()).unwrap().to_path_buf();
            let name = rel.file_name()?.to_string_lossy().into_owned();
            if executor.contains(&name.as_str())
                || name.starts_with("slurm-")
                || Path::new(&name).extension().is_some_and(|e| e == "spent")
            {
                return None;
            }
            // Task and run folders are named by time: compared by shape.
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            Some(match parts.as_slice() {
                [_, task, rest @ ..] if task.starts_with("task-") => {
                    let node = task.split('-').nth(3).unwrap_or_default().to_string();
                    // `runs/000001-<time>/...`: the run's number.
                    let rest: Vec<&str> = rest
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            if i == 1 && rest[0] == "runs" {
                                s.split('-').next().unwrap_or_default()
                            } else {
                                s.as_str()
                            }
                        })
                        .collect();
                    format!("{node}/{}", rest.join("/"))
                }
                _ => parts.last().cloned().unwrap_or_default(),
            })
        })
        .collect()
}

const SPREAD: &str = r#"version = 1
name = "spread"

[agents.where]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; sleep 1; echo \"$CONDUCTOR_ITEM on ${SLURMD_NODENAME:-this machine}\""]

[agents.echo]
kind = "command"
command = ["sed", "1,/^---$/d"]

[nodes.work]
agent = "where"
prompt = "Work on {{ item }}."
for_each = ["a", "b", "c", "d", "e", "f"]
stop = { exit_zero = true }

[nodes.sum]
agent = "echo"
needs = ["work"]
prompt = "{% for w in needs.work %}{{ w.output | trim }}\n{% endfor %}"
stop = { exit_zero = true }
"#;

#[test]
#[ignore = "needs a Slurm cluster: .ci/run starts one (.ci/slurm-cluster) and runs this"]
fn a_fan_out_runs_as_jobs_spread_over_the_nodes_with_the_outcomes_of_a_local_apply() {
    let _turn = turn();
    let flow = Flow::new(SPREAD);
    let (out, summary) = apply_slurm(&flow, &["--max-parallel", "6"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Each instance ran as a job of its own, spread over the three nodes.
    let jobs = jobs(&flow);
    assert_eq!(jobs.len(), 7, "{jobs:?}");
    let nodes: BTreeSet<&str> = jobs
        .iter()
        .filter(|(k, _)| k.starts_with("work["))
        .map(|(_, j)| j["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, BTreeSet::from(["n1", "n2", "n3"]), "{jobs:?}");
    let ids: BTreeSet<&str> = jobs
        .values()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 7);

    // Where each ran: in --json, on its record, and in `status`.
    let a = &jobs["work[a]"];
    let (id, node) = (a["job_id"].as_str().unwrap(), a["node"].as_str().unwrap());
    assert_eq!(instance(&summary, "work[a]")["job"], *a);
    let done = flow
        .project_records()
        .into_iter()
        .find(|r| r["type"] == "NODE_DONE" && r["meta"]["instance"] == "work[a]")
        .unwrap();
    assert_eq!(done["meta"]["job"], format!("slurm job {id}"));
    assert_eq!(done["meta"]["worker"], node);
    let status = crate::support::conductor()
        .current_dir(flow.path())
        .args(["status", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains(&format!("slurm job {id} on {node}")),
        "{shown}"
    );

    // `sum` ran after every `work`, and was handed each one's answer.
    let records = flow.project_records();
    let at = |kind: &str, key: &str| {
        records
            .iter()
            .position(|r| r["type"] == kind && r["meta"]["instance"] == key)
            .unwrap_or_else(|| panic!("no {kind} of {key}"))
    };
    for item in ["a", "b", "c", "d", "e", "f"] {
        assert!(at("NODE_DONE", &format!("work[{item}]")) < at("NODE_START", "sum"));
    }
    let answer = flow
        .files()
        .into_iter()
        .find(|(p, _)| p.ends_with("output.md") && p.to_string_lossy().contains("-sum-"))
        .unwrap()
        .1;
    for item in ["a", "b", "c", "d", "e", "f"] {
        let node = jobs[&format!("work[{item}]")]["node"].as_str().unwrap();
        assert!(answer.contains(&format!("{item} on {node}")), "{answer}");
    }

    // The same workflow applied here: the same outcomes, records and store.
    let local = Flow::new(SPREAD);
    let (out, local_summary) = local.apply(&["--max-parallel", "6"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for key in ["work[a]", "work[f]", "sum"] {
        assert_eq!(state(&summary, key), state(&local_summary, key), "{key}");
        assert_eq!(state(&summary, key), st("done", "exit_zero", 1), "{key}");
    }
    let kinds = |f: &Flow| {
        let mut k: Vec<String> = f
            .project_records()
            .iter()
            .map(|r| r["type"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(kinds(&flow), kinds(&local));
    let mut task_kinds = flow.task_kinds();
    let mut local_task_kinds = local.task_kinds();
    task_kinds.sort();
    local_task_kinds.sort();
    assert_eq!(task_kinds, local_task_kinds);
    assert_eq!(task_files(&flow), task_files(&local));
    assert!(still_queued(&flow).is_empty());
}

/// An agent that starts a `setsid` grandchild, writes both pids to
/// `pids`, and waits until `release` exists.
fn holding(dir: &Path, stop: &str, items: &str) -> String {
    format!(
        r#"version = 1
name = "hold"

[agents.hold]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; setsid sleep 1000 & echo $! >> {dir}/pids; echo $$ >> {dir}/pids; while [ ! -e {dir}/release ]; do sleep 0.1; done"]

[nodes.work]
agent = "hold"
prompt = "Hold {{{{ item }}}}."
for_each = [{items}]
stop = {stop}
"#,
        dir = dir.display()
    )
}

fn wait_for_pids(dir: &Path, n: usize) -> Vec<i32> {
    wait_for(&format!("{n} pids"), || pids(&dir.join("pids")).len() >= n);
    pids(&dir.join("pids"))
}

#[test]
#[ignore = "needs a Slurm cluster: .ci/run starts one (.ci/slurm-cluster) and runs this"]
fn a_timeout_and_ctrl_c_reach_the_agent_and_its_setsid_grandchild_on_the_worker() {
    let _turn = turn();
    let flow = Flow::empty();
    std::fs::write(
        flow.path().join("flow.toml"),
        holding(
            flow.path(),
            r#"{ exit_zero = true, timeout = "1s", max_iterations = 1 }"#,
            r#""a""#,
        ),
    )
    .unwrap();
    let (out, summary) = apply_slurm(&flow, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(state(&summary, "work[a]"), st("failed", "timeout", 1));
    let left = pids(&flow.path().join("pids"));
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|p| !alive(*p)), "{left:?} still run");

    let flow = Flow::empty();
    std::fs::write(
        flow.path().join("flow.toml"),
        holding(flow.path(), "{ exit_zero = true }", r#""a", "b""#),
    )
    .unwrap();
    let child = spawn_slurm(&flow, &[]);
    let started = wait_for_pids(flow.path(), 4);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state(&summary, "work[a]").1, "interrupted");
    assert_eq!(state(&summary, "work[b]").1, "interrupted");
    assert!(started.iter().all(|p| !alive(*p)), "{started:?} still run");
    assert!(still_queued(&flow).is_empty(), "{:?}", still_queued(&flow));
}

#[test]
#[ignore = "needs a Slurm cluster: .ci/run starts one (.ci/slurm-cluster) and runs this"]
fn a_node_going_down_loses_its_worker_and_the_next_apply_resumes_the_instance() {
    let _turn = turn();
    let flow = Flow::empty();
    std::fs::write(
        flow.path().join("flow.toml"),
        holding(flow.path(), "{ exit_zero = true }", r#""a""#),
    )
    .unwrap();
    let child = spawn_slurm(&flow, &[]);
    let started = wait_for_pids(flow.path(), 2);
    let node = {
        let mut node = String::new();
        wait_for("the job's node", || {
            node = jobs(&flow)
                .get("work[a]")
                .and_then(|j| j["node"].as_str().map(str::to_string))
                .unwrap_or_default();
            !node.is_empty()
        });
        node
    };
    slurm(&[
        "scontrol",
        "update",
        &format!("nodename={node}"),
        "state=down",
        "reason=conductor-test",
    ]);
    let out = child.wait_with_output().unwrap();
    slurm(&[
        "scontrol",
        "update",
        &format!("nodename={node}"),
        "state=resume",
    ]);
    wait_for("the node back", || {
        slurm(&["sinfo", "--noheader", "--nodes", &node, "--format=%t"]).trim() == "idle"
    });
    assert_eq!(out.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state(&summary, "work[a]").1, "worker_lost", "{summary:#}");
    let error = instance(&summary, "work[a]")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(error.contains("Slurm"), "{error}");
    assert!(started.iter().all(|p| !alive(*p)), "{started:?} still run");

    // Run again: the apply is continued and the instance resumes its loop
    // in its task folder, the lost run kept beside the new ones (a cut run
    // is not a completed iteration).
    std::fs::write(flow.path().join("release"), "").unwrap();
    let (out, summary) = apply_slurm(&flow, &[]);
    assert_eq!(out.status.code(), Some(0), "{}\n{summary:#}", stderr(&out));
    // (Slurm signals every process of a job on a lost node: the agent may
    // end its iteration before conductor cuts the next one.)
    let (status, reason, iterations) = state(&summary, "work[a]");
    assert_eq!((status.as_str(), reason.as_str()), ("done", "exit_zero"));
    assert_eq!(flow.files_named("unit.json").len(), 1, "one task folder");
    let runs = flow.files_named("run-info.yaml");
    assert_eq!(runs.len() as u64, iterations + 1, "{runs:?}");
}

#[test]
#[ignore = "needs a Slurm cluster: .ci/run starts one (.ci/slurm-cluster) and runs this"]
fn a_dispatcher_killed_and_run_again_follows_its_running_job_instead_of_submitting_it_again() {
    let _turn = turn();
    let flow = Flow::empty();
    let hold = holding(flow.path(), "{ exit_zero = true }", r#""a""#);
    std::fs::write(
        flow.path().join("flow.toml"),
        format!(
            "{hold}\n[agents.quick]\nkind = \"command\"\ncommand = [\"true\"]\n\n[nodes.quick]\nagent = \"quick\"\nprompt = \"q\"\nstop = {{ exit_zero = true }}\n"
        ),
    )
    .unwrap();
    let mut child = spawn_slurm(&flow, &[]);
    wait_for_pids(flow.path(), 2);
    wait_for("quick recorded done", || {
        flow.project_records()
            .iter()
            .any(|r| r["type"] == "NODE_DONE" && r["meta"]["instance"] == "quick")
    });
    let before = jobs(&flow);
    child.kill().unwrap();
    child.wait().unwrap();
    let job_id = before["work[a]"]["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        still_queued(&flow),
        vec![job_id.clone()],
        "the job outlives its dispatcher"
    );

    let again = spawn_slurm(&flow, &[]);
    // Released once the new dispatcher follows it.
    wait_for("the apply continued", || {
        flow.project_records()
            .iter()
            .filter(|r| r["type"] == "WORKFLOW_START")
            .count()
            == 2
    });
    // Followed, not cancelled or submitted again.
    assert_eq!(still_queued(&flow), vec![job_id.clone()]);
    std::fs::write(flow.path().join("release"), "").unwrap();
    let out = again.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(state(&summary, "work[a]"), st("done", "exit_zero", 1));
    assert_eq!(jobs(&flow), before, "no job submitted again");
    assert_eq!(flow.files_named("unit.json").len(), 2);
    let outputs: Vec<PathBuf> = flow
        .paths()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("slurm-"))
        })
        .collect();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    // `quick` ran once, in the first apply.
    let quick_runs = flow
        .files_named("run-info.yaml")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("-quick-"))
        .count();
    assert_eq!(quick_runs, 1);
}

#[test]
#[ignore = "needs a Slurm cluster: .ci/run starts one (.ci/slurm-cluster) and runs this"]
fn a_budget_is_shared_by_the_workers() {
    let _turn = turn();
    // Never done; each call costs $0.0016. Alone, each of the three workers
    // would spend the whole $0.01 (7 calls each, $0.0336 in all).
    let flow = Flow::new(
        r#"version = 1
name = "spend"

[agents.fake]
kind = "claude"
command = ["conductor"]
args = ["__fake-agent", "--stream", "claude", "--sleep", "200ms"]

[nodes.n]
agent = "fake"
prompt = "p"
for_each = ["a", "b", "c"]
stop = { promise = "NEVER", max_iterations = 30 }
"#,
    );
    let (out, summary) = apply_slurm(&flow, &["--budget-usd", "0.01"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for key in ["n[a]", "n[b]", "n[c]"] {
        assert_eq!(state(&summary, key).1, "budget_usd", "{key}: {summary:#}");
    }
    let spent = summary["usage"]["cost_usd"].as_f64().unwrap();
    assert!(spent >= 0.01, "{spent}");
    assert!(spent < 0.02, "the workers spent {spent} of a $0.01 budget");
}

#[test]
#[ignore = "needs a Slurm cluster: .ci/run starts one (.ci/slurm-cluster) and runs this"]
fn max_agents_counts_the_agent_runs_of_every_worker() {
    let _turn = turn();
    // Three instances done on their second call each: six runs wanted,
    // three allowed in the whole apply (each worker alone would allow 3).
    let flow = Flow::new(
        r#"version = 1
name = "capped"

[limits]
max_agents = 3

[agents.fake]
kind = "command"
command = ["conductor", "__fake-agent", "--done-after", "2", "--sleep", "100ms"]

[nodes.n]
agent = "fake"
prompt = "p"
for_each = ["a", "b", "c"]
"#,
    );
    let (out, summary) = apply_slurm(&flow, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let runs = flow.files_named("run-info.yaml").len();
    assert_eq!(runs, 3, "agent runs in all: {summary:#}");
    let capped = ["n[a]", "n[b]", "n[c]"]
        .iter()
        .filter(|k| state(&summary, k).1 == "max_agents")
        .count();
    assert!(capped >= 2, "{summary:#}");
}

#[test]
#[ignore = "needs a Slurm cluster: .ci/run starts one (.ci/slurm-cluster) and runs this"]
fn keys_reach_the_agent_from_the_credentials_file_and_never_reach_slurm() {
    let _turn = turn();
    let secret = "sk-ant-conductor-slurm-test-4f9d2c";
    let flow = Flow::new(
        r#"version = 1
name = "keys"

[agents.ai]
kind = "claude"
command = ["sh", "-c", "cat >/dev/null; echo \"{\\\"type\\\":\\\"result\\\",\\\"subtype\\\":\\\"success\\\",\\\"is_error\\\":false,\\\"result\\\":\\\"key ${ANTHROPIC_API_KEY:+set}\\\"}\""]

[nodes.n]
agent = "ai"
prompt = "p"
stop = { exit_zero = true }
"#,
    );
    let creds = flow.path().join("keys.env");
    std::fs::write(&creds, format!("ANTHROPIC_API_KEY={secret}\n")).unwrap();
    std::fs::set_permissions(
        &creds,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let out = flow
        .command(&["--executor", "slurm"])
        .env("SLURM_CONF", slurm_conf())
        .env("ANTHROPIC_API_KEY", secret)
        .env("CONDUCTOR_CREDENTIALS", &creds)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer = flow
        .files()
        .into_iter()
        .find(|(p, _)| p.ends_with("output.md"))
        .unwrap()
        .1;
    assert_eq!(answer.trim(), "key set");
    // Not in the run store, nor anywhere Slurm keeps jobs.
    for (p, text) in flow.files() {
        assert!(!text.contains(secret), "{} holds the key", p.display());
    }
    let slurm_dir = Path::new(&slurm_conf()).parent().unwrap().to_path_buf();
    let found = Command::new("grep")
        .args(["-r", "-l", "-a", secret])
        .arg(&slurm_dir)
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "Slurm keeps the key in {}",
        String::from_utf8_lossy(&found.stdout)
    );
}

#[test]
#[ignore = "needs a Slurm cluster: .ci/run starts one (.ci/slurm-cluster) and runs this"]
fn a_workflow_that_declares_slurm_runs_there_asking_for_what_it_and_its_nodes_say() {
    let _turn = turn();
    let flow = Flow::new(crate::executor_config::DECLARED);
    // No --executor: the workflow's `[executor]` says where.
    let out = flow
        .command(&[])
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let jobs = jobs(&flow);
    let show = |key: &str| {
        slurm(&[
            "scontrol",
            "show",
            "job",
            "--oneliner",
            jobs[key]["job_id"].as_str().unwrap(),
        ])
    };
    let small = show("small");
    for want in [
        "Partition=conductor",
        "TimeLimit=00:02:00",
        "Comment=workflow",
    ] {
        assert!(small.contains(want), "{want} not in {small}");
    }
    let big = show("big");
    // The node's keys win; its extra argument comes last, so Slurm keeps it.
    for want in [
        "Partition=conductor",
        "TimeLimit=00:05:00",
        "MinMemoryNode=100M",
        "Comment=node",
    ] {
        assert!(big.contains(want), "{want} not in {big}");
    }

    // --executor local wins over the file.
    let flow = Flow::new(crate::executor_config::DECLARED);
    let (out, summary) = flow.apply(&["--executor", "local"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(state(&summary, "big"), st("done", "exit_zero", 1));
    assert!(flow.files_named("job.json").is_empty());
}

#[test]
#[ignore = "needs a Slurm cluster: .ci/run starts one (.ci/slurm-cluster) and runs this"]
fn isolated_instances_run_as_jobs_on_branches_of_their_own_and_a_fan_in_merges_them() {
    let _turn = turn();
    let toml = crate::isolation::FAN_IN
        .replace("FILE_", "own-")
        .replace("LINE_", "from ");
    let (flow, repo) = crate::isolation::flow_in_repo(&toml);
    let (out, summary) = apply_slurm(&flow, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(jobs(&flow).len(), 3, "every instance a job");
    // Each worker's work committed on its branch, on the worker.
    for item in ["a", "b"] {
        let branch = format!("conductor/fanin/worker.{item}");
        assert_eq!(
            crate::isolation::on_branch(&repo, &branch, &format!("own-{item}.txt")),
            format!("from {item}")
        );
        assert_eq!(
            instance(&summary, &format!("worker[{item}]"))["worktree"]["branch"],
            branch
        );
    }
    // The reviewer started from both merged in.
    assert_eq!(state(&summary, "review"), st("done", "exit_zero", 1));
    let answer = flow
        .files()
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().contains("review") && p.ends_with("output.md"))
        .unwrap()
        .1;
    assert_eq!(answer.trim(), "from a from b line 0");
    // The checkout is untouched.
    assert_eq!(crate::isolation::git(&repo, &["status", "--porcelain"]), "");
}
