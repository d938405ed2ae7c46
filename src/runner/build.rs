//! Owns building the jobs of a plan: each instance joined with its
//! program node, its agents resolved to argv and environment
//! (`crate::agents`), its stop plan turned into typed limits, its needs
//! taken from the plan's graph; then one check job per sub-workflow that is
//! judged. Anything the plan and the program disagree on is an error,
//! never a guess.

use std::sync::Arc;
use std::time::Duration;

use super::job::{
    AgentJob, FanOutJob, Job, JobId, JobKind, JsonSchema, MergeJob, PerJob, SchemaError, StopSpec,
};
use crate::agents::http::SpecError;
use crate::agents::kind::ArgvError;
use crate::agents::spec::AgentSpec;
use crate::compile::{Action, GroupId, NodeId, Program};
use crate::model::{Agent, Duration as ModelDuration, OnFailure, OutputFormat};
use crate::paths::normalize;
use crate::plan::{AgentRef, Instance, InstanceKind, Plan, StopPlan};
use crate::stop_reason::Condition;

/// A workflow that cannot run as written, found before anything starts.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    #[error("node `{node}`: unknown agent `{agent}`")]
    UnknownAgent { node: String, agent: String },
    #[error("node `{node}`: agent `{agent}`: {source}")]
    Argv {
        node: String,
        agent: String,
        source: ArgvError,
    },
    #[error("node `{node}`: agent `{agent}`: {source}")]
    Http {
        node: String,
        agent: String,
        source: SpecError,
    },
    #[error("node `{node}`: {source}")]
    Schema { node: String, source: SchemaError },
    #[error("node `{node}`: {source}")]
    Stop { node: String, source: StopError },
    /// A run-time item's workdir, which preflight could not check.
    #[error("node `{node}`: the workdir {} does not exist", dir.display())]
    Workdir {
        node: String,
        dir: std::path::PathBuf,
    },
    /// The plan and the program disagree: a plan of another program.
    #[error("instance `{key}` is of node `{node}`, which the workflow does not have")]
    UnknownNode { key: String, node: String },
}

/// A `stop` table that cannot be made into limits.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StopError {
    #[error("`output_matches` is not a valid regex: {0}")]
    Regex(#[from] regex::Error),
    #[error("`{text}` is not a valid duration: {source}")]
    Duration {
        text: String,
        source: crate::model::DurationError,
    },
}

/// Builds every job of the plan, in plan order (which is dependency order):
/// one per instance, with the needs the plan's graph gives it, then one per
/// sub-workflow that is judged (`add_group_checks`).
pub(super) fn build(program: &Program, plan: &Plan) -> Result<PerJob<Job>, JobError> {
    let entry_dir = program.entry_dir();
    let node_index: std::collections::HashMap<&str, NodeId> = program
        .node_ids()
        .map(|id| (program.node(id).id.as_str(), id))
        .collect();
    let mut jobs = plan
        .instances
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let node =
                node_index
                    .get(&*inst.node)
                    .copied()
                    .ok_or_else(|| JobError::UnknownNode {
                        key: inst.key.to_string(),
                        node: inst.node.to_string(),
                    })?;
            Ok(Job {
                key: Arc::clone(&inst.key),
                node,
                item: inst.item.clone(),
                matrix: inst.matrix.clone(),
                needs: needs_in(plan, i),
                kind: kind(program, node, inst, &node_index)?,
                workdir: normalize(&entry_dir.join(&*inst.workdir)),
                env: inst
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                on_failure: program.node(node).on_failure,
                fingerprint: Arc::default(),
                forced: false,
                inputs: inst.inputs.clone(),
                isolation: None,
                writes: crate::writes::Writes::new(&inst.workdir, &inst.writes).map(Arc::new),
            })
        })
        .collect::<Result<PerJob<_>, _>>()?;
    add_group_checks(program, &entry_dir, &mut jobs)?;
    Ok(jobs)
}

/// The instances instance `i` waits for: the sources of its edges in the
/// plan's graph, in the order the plan found them (the order `needs` lists
/// them in).
fn needs_in(plan: &Plan, i: usize) -> Vec<JobId> {
    use petgraph::visit::EdgeRef;
    let mut edges: Vec<_> = plan
        .graph
        .edges_directed(
            petgraph::graph::NodeIndex::new(i),
            petgraph::Direction::Incoming,
        )
        .map(|e| (e.id(), plan.graph[e.source()]))
        .collect();
    edges.sort_unstable_by_key(|(id, _)| *id);
    edges
        .into_iter()
        .map(|(_, from)| JobId::new(from))
        .collect()
}

/// One group job per sub-workflow with `[success]` commands or a `stop`:
/// it needs every inner instance, and everything outside that needs an
/// inner instance needs the group job too. Inner groups come first, so an
/// outer group's inner instances include its inner groups' jobs.
fn add_group_checks(
    program: &Program,
    entry_dir: &std::path::Path,
    jobs: &mut PerJob<Job>,
) -> Result<(), JobError> {
    let mut order: Vec<GroupId> = (0..program.groups.len()).map(GroupId::new).collect();
    // An inner group is created after its outer one; judge inner ones first.
    order.reverse();
    for g in order {
        let group = program.group(g);
        if group.success.is_empty() && group.stop.is_none() {
            continue;
        }
        let stop = group
            .stop
            .as_ref()
            .map(|s| {
                group_stop(s)
                    .map(Arc::new)
                    .map_err(|source| JobError::Stop {
                        node: group.id.clone(),
                        source,
                    })
            })
            .transpose()?;
        let inner: Vec<JobId> = jobs
            .iter()
            .filter(|(_, job)| program.node(job.node).groups.contains(&g))
            .map(|(j, _)| j)
            .collect();
        if inner.is_empty() {
            continue;
        }
        let check = JobId::new(jobs.len());
        for (j, job) in jobs.iter_mut() {
            if !inner.contains(&j) && job.needs.iter().any(|n| inner.contains(n)) {
                job.needs.push(check);
            }
        }
        let file = normalize(&entry_dir.join(&group.file));
        jobs.push(Job {
            key: Arc::from(group.id.as_str()),
            node: group.result,
            item: None,
            matrix: None,
            needs: inner,
            kind: JobKind::Group {
                group: g,
                stop,
                commands: group.success.clone(),
                workdir: file
                    .parent()
                    .map_or_else(|| entry_dir.to_path_buf(), std::path::Path::to_path_buf),
            },
            workdir: entry_dir.to_path_buf(),
            env: Vec::new(),
            on_failure: OnFailure::Fail,
            fingerprint: Arc::default(),
            forced: false,
            inputs: Vec::new(),
            isolation: None,
            writes: None,
        });
    }
    Ok(())
}

/// A sub-workflow node's `stop`: its success conditions (none means "the
/// inner result is done"), `max_iterations` rounds and `deadline`.
fn group_stop(stop: &crate::model::Stop) -> Result<StopSpec, StopError> {
    let ms = |d: &Option<crate::model::Spanned<ModelDuration>>| {
        d.as_ref().map(|d| Duration::from_millis(d.value.millis))
    };
    let text = |s: &Option<crate::model::Spanned<String>>| s.as_ref().map(|s| s.value.clone());
    let flag = |b: &Option<crate::model::Spanned<bool>>| b.as_ref().is_some_and(|b| b.value);
    Ok(StopSpec {
        done_file: flag(&stop.done_file),
        promise: text(&stop.promise),
        output_matches: stop
            .output_matches
            .as_ref()
            .map(|r| regex::Regex::new(&r.value))
            .transpose()?,
        command: text(&stop.command),
        expr: text(&stop.expr),
        exit_zero: flag(&stop.exit_zero),
        all: flag(&stop.all),
        max_iterations: stop
            .max_iterations
            .as_ref()
            .map_or(crate::compile::DEFAULT_MAX_ITERATIONS, |m| m.value),
        timeout: ms(&stop.timeout)
            .unwrap_or(Duration::from_millis(crate::compile::DEFAULT_TIMEOUT_MS)),
        idle_timeout: None,
        deadline: ms(&stop.deadline),
        budget_usd: None,
        budget_tokens: None,
        stall: None,
    })
}

fn kind(
    program: &Program,
    node: NodeId,
    inst: &Instance,
    node_index: &std::collections::HashMap<&str, NodeId>,
) -> Result<JobKind, JobError> {
    let n = program.node(node);
    let prompt = || match &n.action {
        // The plan rendered the `vars` for this instance.
        Action::Prompt { template, .. } => {
            let source = program.scopes[n.scope]
                .templates
                .get_template(template)
                .map(|t| t.source().to_string())
                .unwrap_or_default();
            (
                template.clone(),
                serde_json::Value::Object(inst.vars.clone()),
                source.contains("previous"),
            )
        }
        Action::Merge(m) => (
            m.resolver.clone().unwrap_or_default(),
            serde_json::Value::Null,
            false,
        ),
        Action::Gate { .. } => (String::new(), serde_json::Value::Null, false),
    };
    let json = n
        .output
        .as_ref()
        .is_some_and(|o| o.format.value == OutputFormat::Json);
    let schema = n
        .output
        .as_ref()
        .and_then(|o| o.schema.as_ref())
        .filter(|_| json)
        .map(|s| {
            JsonSchema::load(program.scopes[n.scope].dir.join(&s.value))
                .map(Arc::new)
                .map_err(|source| JobError::Schema {
                    node: n.id.clone(),
                    source,
                })
        })
        .transpose()?;
    let resolver = match (&inst.resolver, &n.resolver) {
        (Some(r), Some((_, template))) => Some(Arc::new(AgentJob {
            agents: vec![agent_spec(program, node, &r.agent)?],
            stop: stop_spec(&r.stop).map_err(|source| JobError::Stop {
                node: n.id.clone(),
                source,
            })?,
            template: template.clone(),
            vars: serde_json::Value::Null,
            uses_previous: false,
            json: false,
            schema: None,
            resolver: None,
        })),
        _ => None,
    };
    let agent_job = |agents: Vec<&AgentRef>, stop: &StopPlan| -> Result<Arc<AgentJob>, JobError> {
        let (template, vars, uses_previous) = prompt();
        Ok(Arc::new(AgentJob {
            agents: agents
                .into_iter()
                .map(|a| agent_spec(program, node, a))
                .collect::<Result<_, _>>()?,
            stop: stop_spec(stop).map_err(|source| JobError::Stop {
                node: n.id.clone(),
                source,
            })?,
            template,
            vars,
            uses_previous,
            json,
            schema: schema.clone(),
            resolver: resolver.clone(),
        }))
    };
    Ok(match &inst.kind {
        InstanceKind::Gate { expr } => JobKind::Gate(expr.clone()),
        InstanceKind::Merge {
            into,
            verify,
            resolver,
            ..
        } => JobKind::Merge(Arc::new(MergeJob {
            from: match &n.action {
                Action::Merge(m) => m.from.clone(),
                _ => Vec::new(),
            },
            into: into.clone(),
            verify: verify.clone(),
            resolver: resolver
                .as_ref()
                .map(|r| agent_job(vec![&*r.agent], &r.stop))
                .transpose()?,
        })),
        InstanceKind::Agent {
            agent,
            fallback_agents,
            stop,
        } => JobKind::Agent(agent_job(
            std::iter::once(&**agent)
                .chain(fallback_agents.iter().map(|a| &**a))
                .collect(),
            stop,
        )?),
        InstanceKind::FanOut {
            from,
            path,
            lines,
            max_items,
            agent,
            stop,
        } => JobKind::FanOut(Arc::new(FanOutJob {
            from: n
                .fan_out_source
                .or_else(|| node_index.get(from.as_str()).copied())
                .ok_or_else(|| JobError::UnknownNode {
                    key: inst.key.to_string(),
                    node: from.clone(),
                })?,
            path: path.clone(),
            lines: *lines,
            max_items: *max_items,
            mirror: matches!(n.for_each, Some(crate::model::ForEach::EachOf { .. })),
            agent: agent_job(vec![&**agent], stop)?,
        })),
    })
}

/// The job of one item of run-time fan-out `base`: the fan-out's job with
/// what the item's instance (`crate::plan::instance_of_item`) renders for
/// it: its workdir, `env`, `inputs`, agents, stop and `vars`. Its needs,
/// fingerprint and `--force` mark are the dispatcher's to set.
pub(crate) fn item_job(
    program: &Program,
    base: &Job,
    spec: &FanOutJob,
    inst: &Instance,
) -> Result<Job, JobError> {
    let n = program.node(base.node);
    let InstanceKind::Agent {
        agent,
        fallback_agents,
        stop,
    } = &inst.kind
    else {
        return Err(JobError::UnknownNode {
            key: inst.key.to_string(),
            node: n.id.clone(),
        });
    };
    let agents = std::iter::once(&**agent)
        .chain(fallback_agents.iter().map(|a| &**a))
        .map(|a| agent_spec(program, base.node, a))
        .collect::<Result<_, _>>()?;
    let stop = stop_spec(stop).map_err(|source| JobError::Stop {
        node: n.id.clone(),
        source,
    })?;
    let job = AgentJob {
        agents,
        stop,
        template: spec.agent.template.clone(),
        vars: serde_json::Value::Object(inst.vars.clone()),
        uses_previous: spec.agent.uses_previous,
        json: spec.agent.json,
        schema: spec.agent.schema.clone(),
        resolver: spec.agent.resolver.clone(),
    };
    let workdir = normalize(&program.entry_dir().join(&*inst.workdir));
    if !workdir.is_dir() {
        return Err(JobError::Workdir {
            node: n.id.clone(),
            dir: workdir,
        });
    }
    Ok(Job {
        key: Arc::clone(&inst.key),
        item: inst.item.clone(),
        kind: JobKind::Agent(Arc::new(job)),
        workdir,
        env: inst
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        inputs: inst.inputs.clone(),
        writes: crate::writes::Writes::new(&inst.workdir, &inst.writes).map(Arc::new),
        ..base.clone()
    })
}

fn agent_spec(program: &Program, node: NodeId, agent: &AgentRef) -> Result<AgentSpec, JobError> {
    let n = program.node(node);
    let scope = &program.scopes[n.scope];
    let found = scope
        .agent(&agent.name)
        .cloned()
        .or_else(|| Agent::builtin(&agent.name, n.span));
    let Some(def) = found else {
        return Err(JobError::UnknownAgent {
            node: n.id.clone(),
            agent: agent.name.clone(),
        });
    };
    let kind = def.kind.value;
    let strings = |v: &Option<Vec<crate::model::Spanned<String>>>| -> Option<Vec<String>> {
        v.as_ref()
            .map(|v| v.iter().map(|s| s.value.clone()).collect())
    };
    let argv = crate::agents::kind::argv(
        kind,
        strings(&def.command),
        strings(&def.args),
        strings(&def.extra_args).unwrap_or_default(),
        agent.model.as_deref(),
    )
    .map_err(|source| JobError::Argv {
        node: n.id.clone(),
        agent: agent.name.clone(),
        source,
    })?;
    let http = crate::agents::http::HttpSpec::new(
        kind,
        def.base_url.as_ref().map(|s| s.value.as_str()),
        agent.model.as_deref(),
        def.api_key_env.as_ref().map(|s| s.value.as_str()),
    )
    .map_err(|source| JobError::Http {
        node: n.id.clone(),
        agent: agent.name.clone(),
        source,
    })?;
    let price = def.price.as_ref().map(|p| crate::agents::usage::Price {
        input_per_mtok: p.input_per_mtok.as_ref().map_or(0.0, |v| v.value),
        output_per_mtok: p.output_per_mtok.as_ref().map_or(0.0, |v| v.value),
    });
    let mut own_keys: Vec<String> = crate::agents::kind::vendor_keys(kind)
        .iter()
        .map(|k| (*k).to_string())
        .collect();
    if let Some(k) = &def.api_key_env {
        own_keys.push(k.value.clone());
    }
    Ok(AgentSpec {
        name: agent.name.clone(),
        kind,
        argv,
        env: def
            .env
            .iter()
            .map(|(k, v)| (k.value.clone(), v.value.clone()))
            .collect(),
        own_keys,
        http,
        price,
    })
}

fn duration(text: &str) -> Result<Duration, StopError> {
    ModelDuration::parse(text)
        .map(|d| Duration::from_millis(d.millis))
        .map_err(|source| StopError::Duration {
            text: text.to_string(),
            source,
        })
}

fn stop_spec(plan: &StopPlan) -> Result<StopSpec, StopError> {
    let s = &plan.success;
    let text = |c: Condition| {
        s.get(c.as_str())
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let flag = |c: Condition| s.get(c.as_str()).and_then(serde_json::Value::as_bool) == Some(true);
    Ok(StopSpec {
        done_file: flag(Condition::DoneFile),
        promise: text(Condition::Promise),
        output_matches: text(Condition::OutputMatches)
            .map(|r| regex::Regex::new(&r))
            .transpose()?,
        command: text(Condition::Command),
        expr: text(Condition::Expr),
        exit_zero: flag(Condition::ExitZero),
        all: plan.all,
        max_iterations: plan.max_iterations,
        timeout: duration(&plan.timeout)?,
        idle_timeout: plan.idle_timeout.as_deref().map(duration).transpose()?,
        deadline: plan.deadline.as_deref().map(duration).transpose()?,
        budget_usd: plan.budget_usd,
        budget_tokens: plan.budget_tokens,
        stall: plan.stall,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(nodes: &str) -> (tempfile::TempDir, Program, Plan) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flow.toml");
        std::fs::write(
            &file,
            format!("version = 1\nname = \"t\"\n[agents.a]\nkind = \"command\"\ncommand = [\"true\"]\n[defaults]\nagent = \"a\"\n{nodes}"),
        )
        .unwrap();
        let mut c = crate::compile::compile(&file, &[]);
        let program = c.program.take().unwrap();
        let (plan, _) = crate::plan::plan(
            &program,
            &mut c.sources,
            crate::plan::PlanOptions::default(),
        );
        (dir, program, plan)
    }

    #[test]
    fn jobs_need_what_the_plan_says_they_need() {
        let (_dir, program, plan) = compiled(
            "[nodes.a]\nfor_each = [\"x\", \"y\"]\nprompt = \"p\"\n[nodes.b]\nneeds = [\"a\"]\nprompt = \"p\"\n",
        );
        let jobs = build(&program, &plan).unwrap();
        for (i, job) in jobs.iter() {
            let needs: Vec<&str> = job.needs.iter().map(|&n| &*jobs[n].key).collect();
            let planned: Vec<&str> = plan.instances[i.index()]
                .needs
                .iter()
                .map(|k| &**k)
                .collect();
            assert_eq!(needs, planned, "{}", job.key);
        }
        let b = jobs.values().find(|j| &*j.key == "b").unwrap();
        assert_eq!(b.needs.len(), 2);
    }

    #[test]
    fn an_instance_of_a_node_the_program_lacks_is_an_error() {
        let (_dir, program, mut plan) = compiled("[nodes.a]\nprompt = \"p\"\n");
        plan.instances[0].node = "gone".into();
        let err = build(&program, &plan).unwrap_err();
        assert!(
            matches!(&err, JobError::UnknownNode { node, .. } if node == "gone"),
            "{err}"
        );
    }
}
