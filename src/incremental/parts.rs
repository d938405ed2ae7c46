//! Owns what goes into one instance's fingerprint (docs/watch.md): its
//! definition as the plan has it (without its prompt text, description
//! and needs, which are hashed apart), its stop plan, its agents with
//! their CLI versions, its prompt template with every template it
//! includes (by computed name too) and the params and environment
//! variables they read, its output settings and schema,
//! and the content of its `inputs`; for a gate its expression, for a
//! sub-workflow's check its commands and stop. The caller walks the jobs
//! in dependency order and hands each the fingerprints of its needs.

use std::collections::BTreeMap;
use std::path::Path;

use super::digest::{short, short_json};
use super::fingerprint::Fingerprint;
use super::inputs::InputHasher;
use crate::agents::spec::AgentSpec;
use crate::agents::version::Versions;
use crate::compile::{Action, Program};
use crate::plan::{Instance, Plan};

/// What fingerprinting needs besides the jobs.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub program: &'a Program,
    pub plan: &'a Plan,
    pub inputs: &'a mut InputHasher,
    pub versions: &'a Versions,
    /// PATH agents see, to find the CLIs whose versions are probed.
    pub path_var: &'a str,
    /// The program's secret variables (`Program::secret_names`), found
    /// once: no fingerprint holds their values.
    pub secrets: &'a [String],
}

/// What fingerprinting reads of one job.
#[derive(Debug)]
pub(crate) struct Subject<'a> {
    /// The plan's instance, when the job is one (a sub-workflow's check is not).
    pub instance: Option<&'a Instance>,
    /// Its program node.
    pub node: crate::compile::NodeId,
    pub workdir: &'a Path,
    /// The commit an isolated instance starts from.
    pub base: Option<&'a str>,
    pub what: What<'a>,
}

/// What the job does, as far as its fingerprint goes.
#[derive(Debug)]
pub(crate) enum What<'a> {
    Agent(AgentParts<'a>),
    Gate {
        expr: &'a str,
    },
    /// A sub-workflow's check: its group, `[success]` commands and rounds.
    Group {
        group: crate::compile::GroupId,
        commands: &'a [String],
        max_iterations: Option<u32>,
    },
    /// A merge node, and the loop of its resolving agent when it has one.
    Merge(Option<AgentParts<'a>>),
}

/// An agent job's (or a run-time fan-out's) loop.
#[derive(Debug)]
pub(crate) struct AgentParts<'a> {
    pub agents: &'a [AgentSpec],
    pub vars: &'a serde_json::Value,
    pub json: bool,
    /// Its `output` schema file, when it has one.
    pub schema: Option<&'a Path>,
}

/// The fingerprint of one job; `upstream` holds the fingerprints of what
/// it needs, by instance key.
pub(crate) fn of(
    subject: &Subject<'_>,
    upstream: BTreeMap<String, String>,
    cx: &mut Context<'_>,
) -> Fingerprint {
    let mut fp = Fingerprint {
        upstream,
        ..Fingerprint::default()
    };
    let mut stop_reads_params = false;
    if let Some(inst) = subject.instance {
        let mut definition = serde_json::to_value(inst).unwrap_or_default();
        if let Some(obj) = definition.as_object_mut() {
            if let Some(stop) = obj.remove("stop") {
                // Its JSON, written once for both.
                let text = stop.to_string();
                fp.parts.insert("stop".into(), short(&text));
                stop_reads_params = text.contains("params");
            }
            for k in ["prompt", "description", "needs", "agent", "fallback_agents"] {
                obj.remove(k);
            }
        }
        fp.parts
            .insert("definition".into(), short_json(&definition));
    }
    if let Some(base) = subject.base {
        fp.parts.insert("base".into(), base.to_string());
    }
    match &subject.what {
        What::Agent(agent) | What::Merge(Some(agent)) => {
            agent_parts(&mut fp, subject, agent, stop_reads_params, cx);
        }
        What::Merge(None) => {}
        What::Gate { expr } => {
            fp.parts.insert("expr".into(), short(expr));
        }
        What::Group {
            group,
            commands,
            max_iterations,
        } => {
            let g = cx.program.group(*group);
            fp.parts.insert(
                "definition".into(),
                short_json(&(&g.id, &g.file, commands, max_iterations)),
            );
            if let Some(plan) = cx.plan.sub_workflows.iter().find(|p| p.id == g.id) {
                fp.parts.insert("stop".into(), short_json(plan));
            }
        }
    }
    fp.seal()
}

/// The values of the environment variables a prompt reads, by name; all of
/// them (but the secrets, which no template sees) when it went through
/// them all. An unset variable counts as a value of its own.
fn env_parts(
    names: &std::collections::BTreeSet<&str>,
    secrets: &[String],
) -> Vec<(String, String)> {
    let visible = |k: &str| !secrets.iter().any(|s| s == k);
    if names.contains(crate::prompt::ALL_ENV) {
        let all: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| visible(k)).collect();
        return vec![("env *".to_string(), short_json(&all))];
    }
    names
        .iter()
        .filter(|k| visible(k))
        .map(|k| (format!("env {k}"), short_json(&std::env::var(k).ok())))
        .collect()
}

fn agent_parts(
    fp: &mut Fingerprint,
    subject: &Subject<'_>,
    agent: &AgentParts<'_>,
    stop_reads_params: bool,
    cx: &mut Context<'_>,
) {
    let node = &cx.program.node(subject.node);
    let scope = &cx.program.scopes[node.scope];
    let agents: Vec<_> = agent
        .agents
        .iter()
        .map(|a| {
            let program = a.argv.first().map_or("", String::as_str);
            let version = cx
                .versions
                .of(a.kind, program, cx.path_var, subject.workdir);
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
        // The templates named in the source, and those the plan's render
        // loaded by a computed name.
        let reads = subject.instance.map(|i| &*i.reads);
        let mut queue: Vec<String> = crate::prompt::referenced_templates(&main)
            .into_iter()
            .map(|r| r.name)
            .chain(reads.into_iter().flat_map(|r| r.templates.iter().cloned()))
            .collect();
        while let Some(name) = queue.pop() {
            if fp.templates.contains_key(&name) {
                continue;
            }
            let source = scope
                .templates
                .get_template(&name)
                .map(|t| t.source().to_string())
                .unwrap_or_default();
            queue.extend(
                crate::prompt::referenced_templates(&source)
                    .into_iter()
                    .map(|r| r.name),
            );
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
        if let Some(reads) = reads {
            for pattern in &reads.patterns {
                let found = super::template_patterns::matching(&scope.library, pattern);
                fp.templates
                    .insert(format!("{pattern} (by item)"), short_json(&found));
            }
        }
        let env: std::collections::BTreeSet<&str> = read
            .iter()
            .filter_map(|r| match r.as_str() {
                "env" => Some(crate::prompt::ALL_ENV),
                r => r.strip_prefix("env.").and_then(|e| e.split('.').next()),
            })
            .chain(
                reads
                    .into_iter()
                    .flat_map(|r| r.env.iter().map(String::as_str)),
            )
            .collect();
        if !env.is_empty() {
            fp.parts.extend(env_parts(&env, cx.secrets));
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
        .map(|path| std::fs::read_to_string(path).unwrap_or_default());
    fp.parts
        .insert("output".into(), short_json(&(agent.json, schema)));
    if let Some(patterns) = subject
        .instance
        .map(|i| i.inputs.as_slice())
        .filter(|p| !p.is_empty())
    {
        fp.inputs
            .clone_from(&cx.inputs.hash(subject.workdir, patterns));
    }
}
