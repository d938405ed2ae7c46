//! Owns instance fingerprints (DESIGN §9.16): what a completed run of an
//! instance depended on, so that `apply` can tell an instance that is up
//! to date from one that changed, and `plan` can say what changed. A
//! fingerprint is a set of named parts (the instance's definition, its
//! prompt and params, its agents with their CLI versions, its stop and
//! output settings), the templates it includes, the content of its
//! `inputs`, and the fingerprints of the instances it needs. Not hashed:
//! the preamble (its paths change per apply) and upstream output text
//! (the upstream fingerprint stands for it).

pub mod inputs;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::job::{Job, JobKind};
use crate::agents::version::Versions;
use crate::compile::{Action, Program};
use crate::plan::Plan;
use inputs::InputHasher;

/// File name of an instance's fingerprint in its task folder.
pub const FILE: &str = "fingerprint.json";

/// What one instance's run depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// SHA-256 over everything below, in hex.
    pub hash: String,
    pub parts: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstream: BTreeMap<String, String>,
}

impl Fingerprint {
    #[must_use]
    fn seal(mut self) -> Self {
        let mut h = Sha256::new();
        for (section, map) in [
            ("parts", &self.parts),
            ("templates", &self.templates),
            ("inputs", &self.inputs),
            ("upstream", &self.upstream),
        ] {
            h.update(section.as_bytes());
            for (k, v) in map {
                h.update([0]);
                h.update(k.as_bytes());
                h.update([1]);
                h.update(v.as_bytes());
            }
            h.update([2]);
        }
        self.hash = hex(&h.finalize());
        self
    }

    /// The fingerprint of one item of a run-time fan-out: the placeholder's,
    /// plus the item and (for `each_of`) the mirrored source instance.
    #[must_use]
    pub fn child(&self, item: &serde_json::Value, source: Option<(&str, &str)>) -> Self {
        let mut fp = self.clone();
        fp.parts.insert("item".into(), short(&item.to_string()));
        if let Some((key, hash)) = source {
            fp.upstream.insert(key.to_string(), hash.to_string());
        }
        fp.seal()
    }

    /// The same, with the upstream instances' final fingerprints (taken when
    /// they ended, which may differ from the plan's).
    #[must_use]
    pub fn with_upstream(&self, upstream: BTreeMap<String, String>) -> Self {
        if upstream == self.upstream {
            return self.clone();
        }
        let mut fp = self.clone();
        fp.upstream = upstream;
        fp.seal()
    }

    /// The same, with the inputs as they are now: taken when an instance
    /// completes, so that what its own agent wrote into its inputs is part
    /// of its result, not a change that runs it again.
    #[must_use]
    pub fn with_inputs_now(&self, workdir: &Path, patterns: &[String], runs_root: &Path) -> Self {
        if patterns.is_empty() {
            return self.clone();
        }
        let mut hasher = InputHasher::new(vec![runs_root.to_path_buf()]);
        let now = hasher.hash(workdir, patterns);
        if *now == self.inputs {
            return self.clone();
        }
        let mut fp = self.clone();
        fp.inputs.clone_from(&now);
        fp.seal()
    }

    /// What differs from `old`, in words: `prompt`, `input src/a.rs`, ..
    pub fn changes(&self, old: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let mut diff =
            |what: &str, new: &BTreeMap<String, String>, old: &BTreeMap<String, String>| {
                for (k, v) in new {
                    match old.get(k) {
                        Some(o) if o == v => {}
                        Some(_) => out.push(label(what, k, "")),
                        None => out.push(label(what, k, " (new)")),
                    }
                }
                for k in old.keys().filter(|k| !new.contains_key(*k)) {
                    out.push(label(what, k, " (gone)"));
                }
            };
        diff("", &self.parts, &old.parts);
        diff("template", &self.templates, &old.templates);
        diff("input", &self.inputs, &old.inputs);
        diff("upstream", &self.upstream, &old.upstream);
        out
    }

    /// Reads the fingerprint saved in a task folder.
    pub fn load(task_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(task_dir.join(FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Saves it in a task folder.
    pub fn save(&self, task_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::store::write_atomic_fast(&task_dir.join(FILE), &text)
    }
}

fn label(what: &str, key: &str, suffix: &str) -> String {
    match what {
        "" => format!("{key}{suffix}"),
        "upstream" => format!("upstream `{key}`{suffix}"),
        _ => format!("{what} {key}{suffix}"),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// 16 hex digits of the SHA-256 of `text`.
fn short(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..8])
}

fn short_json(v: &impl Serialize) -> String {
    short(&serde_json::to_string(v).unwrap_or_default())
}

/// What fingerprinting needs besides the jobs.
#[derive(Debug)]
pub struct Context<'a> {
    pub program: &'a Program,
    pub plan: &'a Plan,
    pub inputs: &'a mut InputHasher,
    pub versions: &'a Versions,
    /// PATH agents see, to find the CLIs whose versions are probed.
    pub path_var: &'a str,
}

/// Computes every job's fingerprint, in job order (needs come first: the
/// plan is in dependency order, and group jobs follow their inner jobs).
pub fn compute(jobs: &mut [Job], cx: &mut Context<'_>) {
    let mut hashes: Vec<Option<String>> = vec![None; jobs.len()];
    for i in topological(jobs) {
        let mut fp = Fingerprint::default();
        let job = &jobs[i];
        for &n in &job.needs {
            if let Some(h) = &hashes[n] {
                fp.upstream.insert(jobs[n].key.to_string(), h.clone());
            }
        }
        let instance = cx.plan.instances.get(i).filter(|inst| inst.key == job.key);
        let mut stop_reads_params = false;
        if let Some(inst) = instance {
            let mut definition = serde_json::to_value(inst).unwrap_or_default();
            if let Some(obj) = definition.as_object_mut() {
                if let Some(stop) = obj.remove("stop") {
                    fp.parts.insert("stop".into(), short_json(&stop));
                    stop_reads_params = stop.to_string().contains("params");
                }
                for k in ["prompt", "description", "needs", "agent", "fallback_agents"] {
                    obj.remove(k);
                }
            }
            fp.parts
                .insert("definition".into(), short_json(&definition));
        }
        match &job.kind {
            JobKind::Agent(agent) | JobKind::FanOut { agent, .. } => {
                agent_parts(
                    &mut fp,
                    job,
                    instance.map(|i| i.inputs.as_slice()),
                    stop_reads_params,
                    agent,
                    cx,
                );
            }
            JobKind::Gate(expr) => {
                fp.parts.insert("expr".into(), short(expr));
            }
            JobKind::Group {
                group,
                commands,
                stop,
                ..
            } => {
                let g = &cx.program.groups[*group];
                fp.parts.insert(
                    "definition".into(),
                    short_json(&(
                        &g.id,
                        &g.file,
                        commands,
                        stop.as_ref().map(|s| s.max_iterations),
                    )),
                );
                if let Some(plan) = cx.plan.sub_workflows.iter().find(|p| p.id == g.id) {
                    fp.parts.insert("stop".into(), short_json(plan));
                }
            }
        }
        let fp = fp.seal();
        hashes[i] = Some(fp.hash.clone());
        jobs[i].fingerprint = Arc::new(fp);
    }
}

/// Job indices, each after everything it needs (group jobs are appended
/// after the jobs that need them, so index order is not enough).
pub(super) fn topological(jobs: &[Job]) -> Vec<usize> {
    let mut waiting: Vec<usize> = jobs.iter().map(|j| j.needs.len()).collect();
    let mut dependents = vec![Vec::new(); jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        for &n in &job.needs {
            dependents[n].push(i);
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..jobs.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(jobs.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    order
}

/// The fingerprint a run-time fan-out stands for once expanded: its own
/// and its instances' final ones, in item order.
pub fn combined(own: &str, instances: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(own.as_bytes());
    for i in instances {
        h.update([0]);
        h.update(i.as_bytes());
    }
    hex(&h.finalize())
}

fn agent_parts(
    fp: &mut Fingerprint,
    job: &Job,
    inputs: Option<&[String]>,
    stop_reads_params: bool,
    agent: &super::job::AgentJob,
    cx: &mut Context<'_>,
) {
    let node = &cx.program.nodes[job.node];
    let scope = &cx.program.scopes[node.scope];
    let agents: Vec<_> = agent
        .agents
        .iter()
        .map(|a| {
            let program = a.argv.first().map_or("", String::as_str);
            let version = cx.versions.of(a.kind, program, cx.path_var, &job.workdir);
            let http = a.http.as_ref().map(|h| (&h.url, &h.model, &h.key_var));
            (&a.name, a.kind.as_str(), &a.argv, &a.env, http, version)
        })
        .collect();
    fp.parts.insert("agent".into(), short_json(&agents));
    if let Action::Prompt { template, .. } = &node.action {
        let main = scope
            .templates
            .get_template(template)
            .map(|t| t.source().to_string())
            .unwrap_or_default();
        fp.parts
            .insert("prompt".into(), short_json(&(template, &main, &agent.vars)));
        let mut queue = crate::prompt::referenced_templates(&main);
        while let Some(name) = queue.pop() {
            if fp.templates.contains_key(&name) {
                continue;
            }
            let source = scope
                .templates
                .get_template(&name)
                .map(|t| t.source().to_string())
                .unwrap_or_default();
            queue.extend(crate::prompt::referenced_templates(&source));
            fp.templates.insert(name, short(&source));
        }
        // Only the params the prompt reads: a param another node uses does
        // not make this one stale. A stop expression may read any of them.
        let mut read: Vec<String> = std::iter::once(template.clone())
            .chain(fp.templates.keys().cloned())
            .filter_map(|t| {
                scope
                    .templates
                    .get_template(&t)
                    .ok()
                    .map(|t| crate::prompt::undeclared(&t))
            })
            .flatten()
            .collect();
        if stop_reads_params {
            read.push("params".into());
        }
        let params = scope
            .params
            .iter()
            .filter(|(k, _)| {
                read.iter().any(|r| {
                    r == "params"
                        || r.strip_prefix("params.")
                            .is_some_and(|rest| rest.split('.').next() == Some(k.as_str()))
                })
            })
            .map(|(k, v)| (format!("param {k}"), short_json(v)));
        fp.parts.extend(params);
    }
    let schema = agent
        .schema
        .as_ref()
        .map(|s| std::fs::read_to_string(&s.path).unwrap_or_default());
    fp.parts
        .insert("output".into(), short_json(&(agent.json, schema)));
    if let Some(patterns) = inputs.filter(|p| !p.is_empty()) {
        fp.inputs
            .clone_from(&cx.inputs.hash(&job.workdir, patterns));
    }
}
