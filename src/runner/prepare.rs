//! Owns turning a plan into the jobs an apply runs: built from the plan
//! and the program (`super::job`), fingerprinted in dependency order
//! (`crate::incremental`), forced and selected (`--force`, `--only`), and
//! checked against the machine (every agent program, API key and workdir
//! there) before anything starts. `plan`'s freshness view is built the
//! same way, so the two cannot disagree.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::error::{ApplyError, Problem};
use super::job::{self, Job, JobKind, PerJob};
use super::options::ApplyOptions;
use super::select;
use crate::agents::version::Versions;
use crate::compile::Program;
use crate::incremental::freshness::{self, Freshness};
use crate::incremental::inputs::InputHasher;
use crate::incremental::parts::{self, AgentParts, Subject, What};
use crate::plan::Plan;
use crate::store::layout::ProjectDir;

/// Jobs ready to run: built, fingerprinted, forced and selected.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub jobs: PerJob<Job>,
    /// Run-time instances `--force` names.
    pub forced_later: HashSet<String>,
}

/// Builds jobs from plans, for one session (a watch re-plans on its own
/// thread with a clone).
#[derive(Debug, Clone)]
pub(crate) struct Preparer {
    versions: Arc<Versions>,
    agent_path: String,
    options: ApplyOptions,
}

impl Preparer {
    pub(crate) fn new(versions: Arc<Versions>, agent_path: String, options: ApplyOptions) -> Self {
        Self {
            versions,
            agent_path,
            options,
        }
    }

    /// Builds the jobs of a plan: fingerprints, `--force`, `--only`, and the
    /// check that every agent program and workdir exists.
    pub(crate) fn prepare(
        &self,
        program: &Program,
        plan: &Plan,
        inputs: &mut InputHasher,
    ) -> Result<Prepared, ApplyError> {
        self.prepare_telling(program, plan, inputs, &mut |_| {})
    }

    /// As [`Self::prepare`]; `asking` is told the agent CLIs about to be
    /// asked their version, before the wait (docs/console.md, "Starting").
    pub(crate) fn prepare_telling(
        &self,
        program: &Program,
        plan: &Plan,
        inputs: &mut InputHasher,
        asking: &mut dyn FnMut(&[String]),
    ) -> Result<Prepared, ApplyError> {
        let mut jobs = build(program, plan)?;
        // Every CLI the jobs may run is asked its version at once (and
        // only when its binary changed since it was last asked).
        let probes: Vec<_> = jobs
            .values()
            .flat_map(|job| {
                let agents: &[crate::agents::spec::AgentSpec] = match &job.kind {
                    JobKind::Agent(a) => &a.agents,
                    JobKind::FanOut(f) => &f.agent.agents,
                    JobKind::Merge(m) => m.resolver.as_ref().map_or(&[], |r| &r.agents),
                    JobKind::Gate(_) | JobKind::Group { .. } => &[],
                };
                agents.iter().filter_map(|a| {
                    Some((
                        a.kind,
                        a.argv.first()?.clone(),
                        self.agent_path.clone(),
                        job.workdir.clone(),
                    ))
                })
            })
            .collect();
        self.versions.warm(&probes, asking);
        let isolation = isolate(&mut jobs, plan, program, self.options.root.as_deref());
        fingerprint(
            &mut jobs,
            plan,
            &mut parts::Context {
                program,
                plan,
                inputs,
                versions: &self.versions,
                path_var: &self.agent_path,
                secrets: &program.secret_names(),
            },
        );
        self.versions.save();
        let (jobs, forced_later) = selected(jobs, program, &self.options)?;
        preflight(&jobs, &self.agent_path, program, isolation)?;
        Ok(Prepared { jobs, forced_later })
    }
}

/// `--only` and `--force` name something, whatever state the machine is in.
pub(crate) fn check_invocation(
    program: &Program,
    plan: &Plan,
    options: &ApplyOptions,
) -> Result<(), ApplyError> {
    selected(build(program, plan)?, program, options).map(|_| ())
}

fn build(program: &Program, plan: &Plan) -> Result<PerJob<Job>, ApplyError> {
    Ok(super::build::build(program, plan)?)
}

/// The jobs `--force` marks and `--only` keeps, and the run-time instances
/// `--force` names.
fn selected(
    mut jobs: PerJob<Job>,
    program: &Program,
    options: &ApplyOptions,
) -> Result<(PerJob<Job>, HashSet<String>), ApplyError> {
    let mut forced_later = HashSet::new();
    if let Some(names) = &options.force {
        let forced = select::force(&mut jobs, names, program);
        forced_later = forced.later;
        if let Some(name) = forced.unknown.first() {
            return Err(select::unknown("force", name, &jobs, program));
        }
    }
    let jobs = select::only(jobs, &options.only, program)?;
    Ok((jobs, forced_later))
}

/// Gives every job its fingerprint, each after the jobs it needs.
fn fingerprint(jobs: &mut PerJob<Job>, plan: &Plan, cx: &mut parts::Context<'_>) {
    for i in job::topological(jobs) {
        let job = &jobs[i];
        let fp = parts::of(&subject(job, plan, i.index()), job::upstream(jobs, job), cx);
        jobs[i].fingerprint = Arc::new(fp);
    }
}

/// What fingerprinting reads of job `i`.
fn subject<'a>(job: &'a Job, plan: &'a Plan, i: usize) -> Subject<'a> {
    let agent = |a: &'a job::AgentJob| {
        What::Agent(AgentParts {
            agents: &a.agents,
            vars: &a.vars,
            json: a.json,
            schema: a.schema.as_ref().map(|s| s.path.as_path()),
        })
    };
    let what = match &job.kind {
        JobKind::Agent(a) => agent(a),
        JobKind::FanOut(f) => agent(&f.agent),
        JobKind::Gate(expr) => What::Gate { expr },
        JobKind::Merge(m) => What::Merge(m.resolver.as_deref().map(|r| AgentParts {
            agents: &r.agents,
            vars: &r.vars,
            json: r.json,
            schema: None,
        })),
        JobKind::Group {
            group,
            commands,
            stop,
            ..
        } => What::Group {
            group: *group,
            commands,
            max_iterations: stop.as_ref().map(|s| s.max_iterations),
        },
    };
    Subject {
        // Group checks are appended after the plan's instances.
        instance: plan.instances.get(i).filter(|inst| inst.key == job.key),
        node: job.node,
        workdir: &job.workdir,
        base: job.isolation.as_ref().map(|i| i.base.commit.as_str()),
        what,
    }
}

/// The freshness of every instance of the plan, by instance key: what an
/// apply would run, and why.
pub(crate) fn freshness(
    program: &Program,
    plan: &Plan,
    root_flag: Option<&Path>,
) -> Result<BTreeMap<String, Freshness>, ApplyError> {
    let mut jobs = build(program, plan)?;
    let root = crate::store::layout::runs_root(root_flag, program.declared_root());
    let project = ProjectDir::new(&root, &program.project);
    let exe = std::env::current_exe().unwrap_or_default();
    let path_var = super::context::agent_path(&exe);
    fingerprint(
        &mut jobs,
        plan,
        &mut parts::Context {
            program,
            plan,
            inputs: &mut InputHasher::new(root.clone()),
            versions: &Versions::default(),
            path_var: &path_var,
            secrets: &program.secret_names(),
        },
    );
    let index = crate::store::index::Index::load(project.path(), &program.name);
    // What a run-time fan-out becomes, and so what everything downstream
    // of it depends on, is known only when it runs.
    let mut at_run_time = PerJob::filled(jobs.len(), false);
    let mut out = BTreeMap::new();
    for i in job::topological(&jobs) {
        let job = &jobs[i];
        at_run_time[i] =
            matches!(job.kind, JobKind::FanOut(_)) || job.needs.iter().any(|&n| at_run_time[n]);
        let state = match &job.kind {
            JobKind::Gate(_) => Freshness::AtRunTime,
            _ if at_run_time[i] => Freshness::AtRunTime,
            _ => freshness::of(&project, &index, &job.key, &job.fingerprint),
        };
        out.insert(job.key.to_string(), state);
    }
    Ok(out)
}

/// Gives every isolated job its repository and base commit, each found
/// once; what cannot be had, as problems of the machine.
fn isolate(
    jobs: &mut PerJob<Job>,
    plan: &Plan,
    program: &Program,
    runs_root: Option<&Path>,
) -> Vec<Problem> {
    let mut bases = crate::isolation::Bases::new(runs_root);
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (i, job) in jobs.iter_mut() {
        let Some(planned) = plan
            .instances
            .get(i.index())
            .filter(|inst| inst.key == job.key)
            .and_then(|inst| inst.isolation.as_ref())
        else {
            continue;
        };
        // A run-time fan-out's workdir may be made from its items: its
        // repository is the one its workflow file is in.
        let dir = if crate::prompt::pattern(&job.workdir.to_string_lossy()).is_some() {
            program.entry_dir()
        } else if job.workdir.is_dir() {
            job.workdir.clone()
        } else {
            // Said by the workdir check.
            continue;
        };
        match bases.resolve(&dir, &planned.base, &program.name) {
            Ok(base) => {
                job.isolation = Some(Arc::new(job::Isolated {
                    base,
                    workflow: program.name.clone(),
                    sandbox: planned.mode == "sandbox",
                    network: planned.network.unwrap_or(true),
                    worktree: None,
                }));
            }
            Err(e) => {
                let node = program.node(job.node).id.clone();
                if seen.insert((node.clone(), planned.base.clone())) {
                    problems.push(Problem::Isolation {
                        node,
                        reason: e.to_string(),
                        help: e.help(),
                    });
                }
            }
        }
    }
    problems
}

/// Every agent program, HTTP agent's API key and workdir exists, and every
/// isolated node has its base, before anything starts.
fn preflight(
    jobs: &PerJob<Job>,
    path: &str,
    program: &Program,
    isolation: Vec<Problem>,
) -> Result<(), ApplyError> {
    let mut problems = isolation;
    let mut seen = std::collections::HashSet::new();
    for job in jobs.values() {
        let node = &program.node(job.node).id;
        let agents = match &job.kind {
            JobKind::Agent(a) => &a.agents,
            JobKind::FanOut(f) => &f.agent.agents,
            JobKind::Merge(m) => match &m.resolver {
                Some(r) => &r.agents,
                None => continue,
            },
            JobKind::Gate(_) | JobKind::Group { .. } => continue,
        };
        // A run-time fan-out whose workdir is made from its items has none
        // yet: each item's is checked when the items are known.
        let stand_in = matches!(job.kind, JobKind::FanOut(_))
            && crate::prompt::pattern(&job.workdir.to_string_lossy()).is_some();
        if !stand_in
            && !job.workdir.is_dir()
            && seen.insert(("dir", job.workdir.display().to_string()))
        {
            problems.push(Problem::WorkdirMissing {
                node: node.clone(),
                dir: job.workdir.clone(),
            });
        }
        for a in agents {
            if let Some(http) = &a.http {
                // The agent's own `env` may hold the key; conductor's environment otherwise.
                let set = a
                    .env
                    .iter()
                    .find(|(k, _)| *k == http.key_var)
                    .map(|(_, v)| v.clone())
                    .or_else(|| std::env::var(&http.key_var).ok())
                    .is_some_and(|v| !v.trim().is_empty());
                if !set && seen.insert(("key", a.name.clone())) {
                    problems.push(Problem::KeyUnset {
                        agent: a.name.clone(),
                        node: node.clone(),
                        var: http.key_var.clone(),
                    });
                }
                continue;
            }
            let Some(program_name) = a.argv.first() else {
                continue;
            };
            if !seen.insert(("agent", a.name.clone() + program_name)) {
                continue;
            }
            if crate::process::resolve(program_name, path, &job.workdir).is_none() {
                problems.push(Problem::ProgramMissing {
                    agent: a.name.clone(),
                    node: node.clone(),
                    program: program_name.clone(),
                    hint: crate::agents::kind::install_hint(a.kind),
                });
            }
        }
    }
    if let Some(job) = jobs
        .values()
        .find(|j| j.isolation.as_ref().is_some_and(|i| i.sandbox))
        && crate::isolation::sandbox::find(path, &job.workdir).is_none()
    {
        problems.push(Problem::Isolation {
            node: program.node(job.node).id.clone(),
            reason: format!(
                "`isolation = \"sandbox\"` needs bubblewrap (`{}`), which is not found on PATH",
                crate::isolation::sandbox::PROGRAM
            ),
            help: crate::isolation::sandbox::INSTALL_HINT.to_string(),
        });
    }
    if let Some(var) = program.notify.as_ref().and_then(|n| n.secret_env.as_ref())
        && std::env::var(var).map_or(true, |v| v.trim().is_empty())
    {
        problems.push(Problem::WebhookSecretUnset { var: var.clone() });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::NotReady(problems))
    }
}
