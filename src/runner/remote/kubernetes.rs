//! Owns the Kubernetes Job manifests `conductor plan --executor kubernetes
//! --manifests DIR` writes (docs/distributed.md, "Kubernetes Jobs"): the
//! unit contract of the Slurm executor on Kubernetes, one `batch/v1` Job
//! per agent instance, built from the typed API structs. Its container runs
//! `conductor __unit` as PID 1 (deleting the pod sends SIGTERM to it alone,
//! and it stops its agents as on Slurm), on a shared volume holding the
//! runs root and the checkout, with the keys from a Secret mounted as the
//! `CONDUCTOR_CREDENTIALS` file. No executor submits them yet, and they
//! have not been run against a cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::compile::Program;
use crate::plan::Plan;

/// Where the keys file is mounted in the pod.
const KEYS_DIR: &str = "/var/run/conductor/keys";
/// How long a finished Job is kept for its logs to be read.
const KEEP_FINISHED_SECONDS: i32 = 3600;

/// What the manifests are made with (`plan`'s flags).
#[derive(Debug)]
pub(crate) struct Cluster {
    /// The image with `conductor` and the agents' CLIs on its PATH.
    pub image: String,
    pub namespace: Option<String>,
    /// The claim of the shared volume: `runs/` holds the runs root,
    /// `workspace/` the workflow's folder.
    pub claim: String,
    /// The Secret whose `keys.env` holds the API keys.
    pub secret: String,
    /// The runs root, absolute, as on this machine: mounted at the same path.
    pub root: PathBuf,
    pub grace: Duration,
}

/// One Job per agent instance (a run-time fan-out's one stands for each of
/// its items), with the file name it is written to. The task folder is
/// named when an apply starts: `unit.json`'s path has `TASK` for it.
pub(crate) fn jobs(program: &Program, plan: &Plan, cluster: &Cluster) -> Vec<(String, Job)> {
    let workspace = program.entry_dir();
    super::planned::units(program, plan)
        .map(|(inst, node)| {
            let executor = program.node(node).executor.as_ref();
            let asked = program.executor.with(executor);
            let cpus = asked.cpus.map(|c| c.value.to_string());
            let mem = asked.mem.map(|m| memory(&m.value));
            let time = asked.time.map(|t| t.value.millis.div_ceil(1000));
            let name = job_name(&plan.workflow, &inst.key);
            let spec = cluster
                .root
                .join(&plan.project)
                .join("TASK")
                .join("unit.json");
            let workdir = crate::paths::normalize(&workspace.join(&*inst.workdir));
            let job = Job {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: cluster.namespace.clone(),
                    labels: Some(labels(&plan.workflow)),
                    annotations: Some(BTreeMap::from([(
                        "conductor.dev/instance".to_string(),
                        inst.key.to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                spec: Some(JobSpec {
                    // Conductor resumes a lost unit itself: Kubernetes never
                    // starts one again behind the dispatcher's back.
                    backoff_limit: Some(0),
                    active_deadline_seconds: time.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
                    ttl_seconds_after_finished: Some(KEEP_FINISHED_SECONDS),
                    // A pod evicted or its node lost fails the Job at once:
                    // `worker_lost`, told apart from the unit's own end.
                    pod_failure_policy: Some(PodFailurePolicy {
                        rules: vec![PodFailurePolicyRule {
                            action: "FailJob".into(),
                            on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                                type_: "DisruptionTarget".into(),
                                status: "True".into(),
                            }]),
                            ..PodFailurePolicyRule::default()
                        }],
                    }),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels(&plan.workflow)),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(pod(cluster, &workspace, &workdir, &spec, cpus, mem)),
                    },
                    ..JobSpec::default()
                }),
                ..Job::default()
            };
            (format!("{name}.yaml"), job)
        })
        .collect()
}

fn pod(
    cluster: &Cluster,
    workspace: &Path,
    workdir: &Path,
    spec: &Path,
    cpus: Option<String>,
    mem: Option<String>,
) -> PodSpec {
    let amounts: BTreeMap<String, Quantity> = [("cpu", cpus), ("memory", mem)]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), Quantity(v?))))
        .collect();
    let path = |p: &Path| p.display().to_string();
    PodSpec {
        restart_policy: Some("Never".into()),
        // The unit's agents get the grace period; the unit a little more
        // to write its outcome.
        termination_grace_period_seconds: Some(
            i64::try_from(cluster.grace.as_secs() + 5).unwrap_or(i64::MAX),
        ),
        containers: vec![Container {
            name: "unit".into(),
            image: Some(cluster.image.clone()),
            command: Some(vec!["conductor".into(), "__unit".into(), path(spec)]),
            working_dir: Some(path(workdir)),
            env: Some(vec![EnvVar {
                name: super::credentials::VARIABLE.into(),
                value: Some(format!("{KEYS_DIR}/keys.env")),
                ..EnvVar::default()
            }]),
            resources: (!amounts.is_empty()).then(|| ResourceRequirements {
                requests: Some(amounts.clone()),
                limits: Some(amounts),
                ..ResourceRequirements::default()
            }),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "shared".into(),
                    mount_path: path(&cluster.root),
                    sub_path: Some("runs".into()),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "shared".into(),
                    mount_path: path(workspace),
                    sub_path: Some("workspace".into()),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "keys".into(),
                    mount_path: KEYS_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
            ]),
            ..Container::default()
        }],
        volumes: Some(vec![
            Volume {
                name: "shared".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: cluster.claim.clone(),
                    ..PersistentVolumeClaimVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "keys".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(cluster.secret.clone()),
                    // Read by the owner only, as the keys file must be.
                    default_mode: Some(0o400),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    }
}

fn labels(workflow: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "conductor".to_string(),
        ),
        ("conductor.dev/workflow".to_string(), label(workflow, 63)),
    ])
}

/// A Job name (a DNS label, 63 characters at most): the workflow and the
/// instance, readable, with a hash of the key so that two keys that read
/// alike stay apart.
fn job_name(workflow: &str, key: &str) -> String {
    let hash = crate::store::short_hash(&format!("{workflow}\0{key}"), 4);
    let readable = label(
        &format!("{workflow}-{key}"),
        63 - "conductor--".len() - hash.len(),
    );
    format!("conductor-{readable}-{hash}")
}

/// `text` as a DNS label: lower-case letters, digits and `-`, at most
/// `max` long, starting and ending with a letter or digit.
fn label(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    out.trim_matches('-').to_string()
}

/// Slurm's memory (`4G`: binary units) as a Kubernetes quantity (`4Gi`).
fn memory(slurm: &str) -> String {
    match slurm.chars().last() {
        Some('K' | 'M' | 'G' | 'T') => format!("{slurm}i"),
        // A bare number is megabytes to Slurm.
        _ => format!("{slurm}Mi"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_that_keep_instances_apart() {
        let a = job_name("Review Code", "work[src/a.rs]");
        let b = job_name("Review Code", "work[src-a.rs]");
        assert!(a.starts_with("conductor-review-code-work-src-a-rs-"), "{a}");
        assert_ne!(a, b);
        let long = job_name(&"w".repeat(80), &"k".repeat(80));
        assert!(long.len() <= 63, "{long}");
        for n in [&a, &b, &long] {
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(!n.ends_with('-'), "{n}");
        }
        assert_eq!(memory("4G"), "4Gi");
        assert_eq!(memory("512"), "512Mi");
    }
}
