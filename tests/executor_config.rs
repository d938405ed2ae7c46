//! Where instances run, as a user writes and checks it without a cluster:
//! `[executor]` and a node's `executor` checked where written, `plan`
//! showing each instance's `sbatch` command, Kubernetes Job manifests read
//! back as typed Jobs, and an apply that Slurm cannot run stopped before
//! anything starts (docs/distributed.md). The runs on a real cluster are
//! in `slurm.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::apply_support::Flow;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs on Slurm when applied, with what the workflow and a node ask for.
pub(crate) const DECLARED: &str = r#"version = 1
name = "declared"

[executor]
kind = "slurm"
partition = "conductor"
time = "2m"
sbatch_args = ["--comment=workflow"]

[agents.a]
kind = "command"
command = ["true"]

[nodes.small]
agent = "a"
prompt = "p"
stop = { exit_zero = true }

[nodes.big]
agent = "a"
prompt = "p"
executor = { mem = "100M", time = "5m", sbatch_args = ["--comment=node"] }
stop = { exit_zero = true }
"#;

#[test]
fn an_apply_slurm_cannot_run_stops_before_anything_starts_saying_why() {
    // A SLURM_CONF that names no cluster: nothing starts, exit 3.
    let flow = Flow::new(DECLARED);
    std::fs::write(flow.path().join("slurm.conf"), "").unwrap();
    let out = flow
        .command(&["--executor", "slurm"])
        .env("SLURM_CONF", flow.path().join("slurm.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    // (`squeue` fails here, or, where Slurm is not installed, cannot run.)
    assert!(
        err.contains("error: --executor slurm: `squeue` failed")
            || err.contains("error: --executor slurm: cannot run `squeue`"),
        "{err}"
    );
    assert!(flow.files_named("unit.json").is_empty());

    // A keys file others can read is refused before Slurm is asked.
    std::fs::write(flow.path().join("keys.env"), "ANTHROPIC_API_KEY=sk-x\n").unwrap();
    std::fs::set_permissions(
        flow.path().join("keys.env"),
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644),
    )
    .unwrap();
    let out = flow
        .command(&["--executor", "slurm"])
        .env("SLURM_CONF", flow.path().join("slurm.conf"))
        .env("CONDUCTOR_CREDENTIALS", "keys.env")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("keys.env can be read by others (mode 644)"),
        "{err}"
    );
    assert!(!err.contains("sk-x"), "{err}");
}

#[test]
fn an_executor_is_checked_where_it_is_written() {
    let flow = Flow::new(&DECLARED.replace(
        r#"executor = { mem = "100M""#,
        r#"executor = { kind = "local", mem = "4 GB""#,
    ));
    let out = crate::support::conductor()
        .current_dir(flow.path())
        .args(["validate", "flow.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("a node's `executor` has no `kind`"), "{err}");
    assert!(err.contains("flow.toml:22:14"), "{err}");
    assert!(
        err.contains("set `kind` in the workflow's `[executor]`"),
        "{err}"
    );
    assert!(
        err.contains("`4 GB` is not an amount of memory Slurm reads"),
        "{err}"
    );

    // The KDL form reads the same.
    std::fs::write(
        flow.path().join("flow.kdl"),
        r#"version 1
name "k"
executor kind="slurm" cpus=2 time="1h" { sbatch-args "--qos=high" "--comment=x"; }
agent "a" kind="command" { command "true"; }
node "n" agent="a" prompt="p" { executor mem="4G"; }
"#,
    )
    .unwrap();
    let out = crate::support::conductor()
        .current_dir(flow.path())
        .args(["validate", "flow.kdl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn plan_shows_the_sbatch_command_each_instance_would_be_submitted_with() {
    let flow = Flow::new(DECLARED);
    let out = crate::support::conductor()
        .current_dir(flow.path())
        .args(["plan", "flow.toml", "--sbatch-arg=--qos=high"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("with --executor slurm, each instance's loop is a Slurm job, submitted as:"),
        "{text}"
    );
    let big = text
        .lines()
        .skip_while(|l| l.trim() != "big")
        .nth(1)
        .unwrap_or_default();
    for want in [
        "sbatch --parsable --job-name=conductor:big",
        "--no-requeue --partition=conductor --mem=100M --time=5 --comment=workflow --comment=node --qos=high",
        "__unit '\\''<task>/unit.json'\\''",
    ] {
        assert!(big.contains(want), "{want} not in {big}");
    }

    let out = crate::support::conductor()
        .current_dir(flow.path())
        .args(["plan", "flow.toml", "--json"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let small = plan["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["instance"] == "small")
        .unwrap();
    assert_eq!(small["sbatch"][0], "sbatch");
    assert!(
        small["sbatch"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("--time=2"))
    );

    // Planned for here: no submissions.
    let out = crate::support::conductor()
        .current_dir(flow.path())
        .args(["plan", "flow.toml", "--executor", "local"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sbatch"));
}

#[test]
fn plan_writes_a_kubernetes_job_per_instance_that_reads_back_as_a_typed_job() {
    let flow = Flow::new(DECLARED);
    let out = crate::support::conductor()
        .current_dir(flow.path())
        .args([
            "plan",
            "flow.toml",
            "--executor",
            "kubernetes",
            "--manifests",
            "k8s",
            "--image",
            "registry.example/conductor:1",
            "--namespace",
            "agents",
            "--grace",
            "20s",
            "--root",
        ])
        .arg(flow.root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("wrote 2 Job manifests to k8s (not yet run against a cluster"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(flow.path().join("k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let jobs: BTreeMap<String, k8s_openapi::api::batch::v1::Job> = files
        .iter()
        .map(|f| {
            let job: k8s_openapi::api::batch::v1::Job =
                serde_saphyr::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            let key = job.metadata.annotations.as_ref().unwrap()["conductor.dev/instance"].clone();
            (key, job)
        })
        .collect();
    let big = &jobs["big"];
    let name = big.metadata.name.as_deref().unwrap();
    assert!(
        name.starts_with("conductor-declared-big-") && name.len() <= 63,
        "{name}"
    );
    assert_eq!(big.metadata.namespace.as_deref(), Some("agents"));
    let spec = big.spec.as_ref().unwrap();
    assert_eq!(
        spec.backoff_limit,
        Some(0),
        "conductor resumes, not Kubernetes"
    );
    assert_eq!(spec.active_deadline_seconds, Some(300), "the node's time");
    assert_eq!(
        spec.pod_failure_policy.as_ref().unwrap().rules[0]
            .on_pod_conditions
            .as_ref()
            .unwrap()[0]
            .type_,
        "DisruptionTarget"
    );
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(25),
        "the grace and 5 s"
    );
    let unit = &pod.containers[0];
    assert_eq!(unit.image.as_deref(), Some("registry.example/conductor:1"));
    let command = unit.command.as_ref().unwrap();
    assert_eq!(command[..2], ["conductor", "__unit"]);
    assert!(
        command[2].ends_with("/declared/TASK/unit.json"),
        "{command:?}"
    );
    assert!(
        command[2].starts_with(&*flow.root().to_string_lossy()),
        "{command:?}"
    );
    let limits = unit.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["memory"].0, "100Mi");
    let env = unit.env.as_ref().unwrap();
    assert_eq!(env[0].name, "CONDUCTOR_CREDENTIALS");
    let keys = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find_map(|v| v.secret.as_ref())
        .unwrap();
    assert_eq!(keys.default_mode, Some(0o400));
    assert_eq!(
        jobs["small"].spec.as_ref().unwrap().active_deadline_seconds,
        Some(120),
        "the workflow's time"
    );

    // Kubernetes is written, never applied to.
    let out = crate::support::conductor()
        .current_dir(flow.path())
        .args(["plan", "flow.toml", "--executor", "kubernetes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--executor kubernetes --manifests DIR --image IMAGE"));
    let out = flow
        .command(&["--executor", "kubernetes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
