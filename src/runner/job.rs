//! Owns what the runner knows about each node instance before it runs (a
//! [`Job`]): its program node, item, needs, what it does (an agent's loop,
//! a gate, a sub-workflow's check, a run-time fan-out waiting for its
//! source), its workdir, environment and fingerprint. Jobs are built by
//! `super::build` and read-only after, but for `--force` marks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::agents::spec::AgentSpec;
use crate::compile::{GroupId, NodeId};
use crate::incremental::prior::{Completed, Prior};
use crate::model::OnFailure;

/// A job's place in the jobs of an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct JobId(usize);

impl JobId {
    pub(crate) fn new(index: usize) -> Self {
        Self(index)
    }

    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// Something kept per job, indexed by [`JobId`].
#[derive(Debug, Clone)]
pub(crate) struct PerJob<T>(Vec<T>);

impl<T> Default for PerJob<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> PerJob<T> {
    /// `value` for each of `n` jobs.
    pub(crate) fn filled(n: usize, value: T) -> Self
    where
        T: Clone,
    {
        Self(vec![value; n])
    }

    /// Adds the next job's entry; its id.
    pub(crate) fn push(&mut self, value: T) -> JobId {
        self.0.push(value);
        JobId(self.0.len() - 1)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Every job's id, in order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = JobId> + use<T> {
        (0..self.0.len()).map(JobId)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (JobId, &T)> {
        self.0.iter().enumerate().map(|(i, v)| (JobId(i), v))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (JobId, &mut T)> {
        self.0.iter_mut().enumerate().map(|(i, v)| (JobId(i), v))
    }

    /// The entries, in job order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }

    pub(crate) fn into_values(self) -> impl Iterator<Item = T> {
        self.0.into_iter()
    }
}

impl<T> std::ops::Index<JobId> for PerJob<T> {
    type Output = T;

    fn index(&self, id: JobId) -> &T {
        &self.0[id.0]
    }
}

impl<T> std::ops::IndexMut<JobId> for PerJob<T> {
    fn index_mut(&mut self, id: JobId) -> &mut T {
        &mut self.0[id.0]
    }
}

impl<T> FromIterator<T> for PerJob<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// The success conditions and limits of one Ralph loop, typed.
#[derive(Debug, Clone)]
pub(crate) struct StopSpec {
    pub done_file: bool,
    pub promise: Option<String>,
    pub output_matches: Option<regex::Regex>,
    pub command: Option<String>,
    pub expr: Option<String>,
    pub exit_zero: bool,
    pub all: bool,
    pub max_iterations: u32,
    pub timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub deadline: Option<Duration>,
    pub budget_usd: Option<f64>,
    pub budget_tokens: Option<u64>,
    pub stall: Option<u32>,
}

impl StopSpec {
    /// Whether any success condition is written (or defaulted) in.
    pub(crate) fn has_success(&self) -> bool {
        self.done_file
            || self.exit_zero
            || self.promise.is_some()
            || self.output_matches.is_some()
            || self.command.is_some()
            || self.expr.is_some()
    }
}

/// An agent instance's loop: its agents (the first, then `fallback_agents`) and stop.
#[derive(Debug)]
pub(crate) struct AgentJob {
    pub agents: Vec<AgentSpec>,
    pub stop: StopSpec,
    /// The prompt template's name in its scope's environment, and its `vars`.
    pub template: String,
    pub vars: serde_json::Value,
    /// Whether the prompt reads `previous` itself (then no restart prefix).
    pub uses_previous: bool,
    /// `output = { format = "json" }`: the answer must hold JSON.
    pub json: bool,
    /// ..valid against this schema, if one is given.
    pub schema: Option<Arc<JsonSchema>>,
    /// An isolated instance's agent loop told each conflict between its
    /// needs' branches; `None`: a conflict fails the instance.
    pub resolver: Option<Arc<AgentJob>>,
}

impl AgentJob {
    /// Its first agent's name, as messages call it.
    pub(crate) fn name(&self) -> String {
        self.agents
            .first()
            .map_or_else(|| "the agent".to_string(), |a| a.name.clone())
    }
}

/// An `output` schema, compiled once.
pub(crate) struct JsonSchema {
    pub path: PathBuf,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// An `output` schema that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaError {
    #[error("cannot read the output schema {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the output schema {} is not JSON: {source}", path.display())]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the output schema {} is not a JSON Schema: {reason}", path.display())]
    NotSchema { path: PathBuf, reason: String },
}

/// An answer whose JSON does not match the node's schema: the first few
/// errors, with where they are.
#[derive(Debug, thiserror::Error)]
#[error("the answer's JSON does not match {}: {}", path.display(), errors.join("; "))]
pub(crate) struct SchemaMismatch {
    path: PathBuf,
    errors: Vec<String>,
}

impl JsonSchema {
    pub(crate) fn load(path: PathBuf) -> Result<Self, SchemaError> {
        let text = std::fs::read_to_string(&path).map_err(|source| SchemaError::Read {
            path: path.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| SchemaError::NotJson {
                path: path.clone(),
                source,
            })?;
        let validator = jsonschema::validator_for(&value).map_err(|e| SchemaError::NotSchema {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { path, validator })
    }

    /// Ok, or what is wrong with `value`.
    pub(crate) fn check(&self, value: &serde_json::Value) -> Result<(), SchemaMismatch> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(value)
            .take(5)
            .map(|e| format!("{} (at {})", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SchemaMismatch {
                path: self.path.clone(),
                errors,
            })
        }
    }
}

/// What an instance does.
#[derive(Debug, Clone)]
pub(crate) enum JobKind {
    Agent(Arc<AgentJob>),
    Gate(String),
    /// A sub-workflow node with `[success]` commands or a `stop`: judged
    /// once its inner instances have ended. It is done when the commands
    /// pass and (with a `stop`) its success conditions hold over the inner
    /// result; otherwise, with a `stop`, the inner instances run again.
    Group {
        group: GroupId,
        commands: Vec<String>,
        workdir: PathBuf,
        stop: Option<Arc<StopSpec>>,
    },
    /// Placeholder of a run-time fan-out; replaced by agent jobs when its source is done.
    FanOut(Arc<FanOutJob>),
    /// A merge node: lands its nodes' branches (docs/isolation.md, "Merge nodes").
    Merge(Arc<MergeJob>),
}

/// What a merge node lands, where, and who resolves its conflicts.
#[derive(Debug)]
pub(crate) struct MergeJob {
    /// The isolated nodes whose instances' branches it merges, in order.
    pub from: Vec<NodeId>,
    /// The target branch; its own integration branch when `None`.
    pub into: Option<String>,
    pub verify: Vec<String>,
    /// The agent loop told each conflict; `None`: conflicts stay unmerged.
    pub resolver: Option<Arc<AgentJob>>,
}

/// A run-time fan-out: where its items come from and what each runs.
#[derive(Debug)]
pub(crate) struct FanOutJob {
    pub from: NodeId,
    pub path: Option<String>,
    pub lines: bool,
    pub max_items: u32,
    /// Mirrors (`each_of`) its source's instances rather than reading its answer.
    pub mirror: bool,
    pub agent: Arc<AgentJob>,
}

/// One node instance.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub key: Arc<str>,
    /// Its program node.
    pub node: NodeId,
    pub item: Option<serde_json::Value>,
    pub matrix: Option<serde_json::Map<String, serde_json::Value>>,
    /// The jobs this one waits for.
    pub needs: Vec<JobId>,
    pub kind: JobKind,
    /// Absolute.
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
    pub on_failure: OnFailure,
    /// What its completed run depends on (set after the jobs are built).
    pub fingerprint: Arc<crate::incremental::fingerprint::Fingerprint>,
    /// `--force`: runs even when a completed record matches its fingerprint.
    pub forced: bool,
    /// Its `inputs` globs, rendered (relative to `workdir`).
    pub inputs: Vec<String>,
    /// Where it runs when isolated: set when the apply starts.
    pub isolation: Option<Arc<Isolated>>,
    /// The files it declares it may change (`writes`).
    pub writes: Option<Arc<crate::writes::Writes>>,
}

/// An isolated job's worktree settings (docs/isolation.md).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Isolated {
    /// The repository and the commit its worktree starts from.
    pub base: crate::isolation::Base,
    /// The workflow's name, which its branch is named from.
    pub workflow: String,
    /// Whether its agent runs in a sandbox, and with the network.
    pub sandbox: bool,
    pub network: bool,
    /// Its worktree's top folder, once made ready for its loop.
    pub worktree: Option<PathBuf>,
}

/// Every job, each after everything it needs (group jobs are appended
/// after the jobs that need them, so index order is not enough).
pub(super) fn topological<J: std::borrow::Borrow<Job>>(jobs: &PerJob<J>) -> Vec<JobId> {
    let mut waiting: Vec<usize> = jobs.values().map(|j| j.borrow().needs.len()).collect();
    let mut dependents = vec![Vec::new(); jobs.len()];
    for (i, job) in jobs.iter() {
        for &n in &job.borrow().needs {
            dependents[n.0].push(i.0);
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..jobs.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(jobs.len());
    while let Some(i) = ready.pop_front() {
        order.push(JobId(i));
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    order
}

/// The planned fingerprints of what `job` needs, by instance key: the
/// `upstream` part of its own.
pub(super) fn upstream(
    jobs: &PerJob<Job>,
    job: &Job,
) -> std::collections::BTreeMap<String, String> {
    job.needs
        .iter()
        .map(|&n| (jobs[n].key.to_string(), jobs[n].fingerprint.hash.clone()))
        .collect()
}

impl Job {
    /// Its latest completed run, when that is up to date (never when
    /// `--force` names it).
    pub(crate) fn completed(&self, prior: &Prior) -> Option<Completed> {
        if self.forced {
            return None;
        }
        prior.completed(&self.key, &self.fingerprint.hash)
    }

    /// Whether it resumes an interrupted loop of the apply being continued.
    pub(crate) fn resumes(&self, prior: &Prior) -> bool {
        !self.forced && prior.resumes(&self.key, &self.fingerprint.hash)
    }
}
