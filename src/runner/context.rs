//! Owns what every unit of one apply shares: the program (for templates),
//! the apply's identity and folders, the base environment and secrets, the
//! process supervisor (stop level, grace period, keeper).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::job::Job;
use crate::agents::spec::AgentSpec;
use crate::compile::Program;
use crate::process::{StopLevel, Supervisor};
use crate::secrets::Redactor;
use crate::stop_reason::StopReason;
use jiff::Timestamp;

/// Shared by the dispatcher and every unit. A watch clones it for each
/// apply it starts (another program, another apply id); the keeper and
/// the stop signal are the session's.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub program: Arc<Program>,
    pub workflow: String,
    pub apply_id: String,
    pub apply_start: Timestamp,
    /// This apply continues an unfinished one (same id and task folders).
    pub continued: bool,
    pub project: String,
    /// The workflow file, absolute, when the apply was given one.
    pub file: Option<PathBuf>,
    /// `<root>/<project>`.
    pub project_dir: PathBuf,
    pub runs_root: PathBuf,
    /// Conductor's environment, without secrets sorted out yet.
    pub base_env: Vec<(String, String)>,
    /// Every variable that holds an API key.
    pub secrets: Vec<String>,
    pub redactor: Redactor,
    /// PATH for agents: conductor's own folder first.
    pub agent_path: String,
    /// The stop level, the grace period and the keeper.
    pub supervisor: Supervisor,
    /// Workflow-wide caps (`[limits]`, `--budget-usd`) and what is used of them.
    pub limits: Arc<WorkflowLimits>,
    /// CLI versions, probed once per program.
    pub versions: Arc<crate::agents::version::Versions>,
    /// The workflow's `[success]` commands.
    pub success: Arc<Vec<crate::plan::SuccessCommand>>,
    /// It takes requests to stop one instance (SIGUSR1).
    pub stop_requests: bool,
    /// Its `[notify]` webhooks.
    pub notifier: Option<Arc<super::notify::Notifier>>,
}

/// Who an apply is: its id and start (which name its task folders), and
/// whether it continues an unfinished one.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub apply_id: String,
    pub apply_start: Timestamp,
    pub continued: bool,
}

/// Where and how an apply runs, besides its program and identity.
#[derive(Debug)]
pub(crate) struct Setting {
    pub project_dir: PathBuf,
    pub runs_root: PathBuf,
    pub agent_path: String,
    pub file: Option<PathBuf>,
    pub supervisor: Supervisor,
    pub versions: Arc<crate::agents::version::Versions>,
    pub stop_requests: bool,
    pub limits: WorkflowLimits,
    /// Whether it sends the workflow's `[notify]` webhooks (a remote
    /// unit leaves them to its dispatcher).
    pub notify: bool,
    /// Variables added to conductor's own environment (a remote unit's
    /// credentials file).
    pub extra_env: Vec<(String, String)>,
}

impl Shared {
    pub(crate) fn new(
        program: Arc<Program>,
        success: Arc<Vec<crate::plan::SuccessCommand>>,
        identity: Identity,
        setting: Setting,
    ) -> Self {
        let mut base_env: Vec<(String, String)> = std::env::vars().collect();
        for (k, v) in setting.extra_env {
            base_env.retain(|(name, _)| *name != k);
            base_env.push((k, v));
        }
        let secrets = program.secret_names();
        let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let redactor = crate::secrets::Redactor::new(
            base_env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &secret_refs,
        );
        let notifier = program.notify.as_ref().filter(|_| setting.notify).map(|n| {
            Arc::new(super::notify::Notifier::new(
                n,
                &program.project,
                setting.project_dir.join(crate::store::layout::PROJECT_BUS),
            ))
        });
        Self {
            notifier,
            stop_requests: setting.stop_requests,
            workflow: program.name.clone(),
            project: program.project.clone(),
            file: setting.file,
            limits: Arc::new(setting.limits),
            program,
            apply_id: identity.apply_id,
            apply_start: identity.apply_start,
            continued: identity.continued,
            project_dir: setting.project_dir,
            runs_root: setting.runs_root,
            base_env,
            secrets,
            redactor,
            agent_path: setting.agent_path,
            supervisor: setting.supervisor,
            versions: setting.versions,
            success,
        }
    }
}

/// `[limits] budget_usd` / `--budget-usd` and `max_agents`, shared by every unit.
#[derive(Debug, Default)]
pub(crate) struct WorkflowLimits {
    pub budget_usd: Option<f64>,
    pub max_agents: Option<u32>,
    /// Dollars spent, in millionths.
    spent_micro_usd: AtomicU64,
    agent_runs: AtomicU32,
    /// A remote unit's view of what every unit of its apply spent, kept
    /// by its dispatcher (docs/distributed.md, "Budgets").
    spent_everywhere: Option<PathBuf>,
    /// Where every unit of an apply run elsewhere takes its agent runs
    /// from, for `max_agents`.
    runs_everywhere: Option<PathBuf>,
}

impl WorkflowLimits {
    pub(crate) fn new(budget_usd: Option<f64>, max_agents: Option<u32>) -> Self {
        Self {
            budget_usd,
            max_agents,
            ..Self::default()
        }
    }

    /// A remote unit's limits: what the whole apply spent is read from
    /// `path` before each run.
    pub(crate) fn reading_spent(mut self, path: PathBuf) -> Self {
        self.spent_everywhere = Some(path);
        self
    }

    /// Limits whose agent runs are counted in `path`, shared by every
    /// unit of an apply run elsewhere.
    pub(crate) fn counting_runs_in(mut self, path: PathBuf) -> Self {
        self.runs_everywhere = Some(path);
        self
    }

    /// Claims one agent run, or says which cap forbids it.
    pub(crate) fn claim_run(&self) -> Result<(), StopReason> {
        if let Some(b) = self.budget_usd
            && self.spent().max(self.spent_everywhere()) >= b
        {
            return Err(StopReason::BudgetUsd);
        }
        let Some(max) = self.max_agents else {
            return Ok(());
        };
        if let Some(path) = &self.runs_everywhere {
            match crate::store::counter::take(path, max) {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(StopReason::MaxAgents),
                // Counted here alone, rather than not at all.
                Err(e) => tracing::warn!("cannot count agent runs in {}: {e}", path.display()),
            }
        }
        if self.agent_runs.fetch_add(1, Ordering::SeqCst) >= max {
            return Err(StopReason::MaxAgents);
        }
        Ok(())
    }

    pub(crate) fn spend(&self, usd: f64) {
        // A cast saturates (a negative or NaN cost counts as 0: agents'
        // costs are checked where they are read), and so does the sum, so
        // a huge cost cannot wrap around to look small.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "float to int casts saturate, which is what a budget wants"
        )]
        let micro = (usd * 1e6).round() as u64;
        let _ = self
            .spent_micro_usd
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |spent| {
                Some(spent.saturating_add(micro))
            });
    }

    /// What the dispatcher counts as spent by every unit of the apply; 0
    /// when it has not written it yet.
    fn spent_everywhere(&self) -> f64 {
        self.spent_everywhere
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    }

    pub(crate) fn spent(&self) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "millionths of dollars stay far below 2^52"
        )]
        let micro = self.spent_micro_usd.load(Ordering::SeqCst) as f64;
        micro / 1e6
    }
}

/// The paths of one run, as the agent is told them.
#[derive(Debug)]
pub(crate) struct RunPaths<'a> {
    pub task_id: &'a str,
    pub run_id: &'a str,
    pub task_dir: &'a Path,
    pub run_dir: &'a Path,
    pub iteration: u32,
    pub previous_run: Option<&'a str>,
}

impl Shared {
    /// The environment one agent starts with (docs/run-store.md): conductor's own
    /// without other agents' keys, the agent's and node's `env`, then the
    /// variables the runner owns, applied last so nothing overrides them.
    pub(crate) fn agent_env(
        &self,
        job: &Job,
        agent: &AgentSpec,
        run: &RunPaths<'_>,
    ) -> Vec<(String, String)> {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let own: Vec<&str> = agent.own_keys.iter().map(String::as_str).collect();
        let mut env =
            crate::secrets::agent_environment(self.base_env.iter().cloned(), &secrets, &own);
        let mut set = |k: &str, v: String| {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v));
        };
        // The kind's preset wins over an inherited value (machines set
        // IS_SANDBOX=yes, which claude does not take for "1"); the
        // workflow's `env` wins over both.
        for (k, v) in crate::agents::kind::preset_env(agent.kind) {
            set(k, v.to_string());
        }
        for (k, v) in agent.env.iter().chain(&job.env) {
            set(k, v.clone());
        }
        let node = &self.program.node(job.node).id;
        set("PATH", self.agent_path.clone());
        set("JRUN_PROJECT_ID", self.project.clone());
        set("JRUN_TASK_ID", run.task_id.to_string());
        set("JRUN_ID", run.run_id.to_string());
        set(
            "JRUN_PARENT_ID",
            run.previous_run.unwrap_or_default().to_string(),
        );
        set("JRUN_RUNS_DIR", self.runs_root.display().to_string());
        set(
            "JRUN_MESSAGE_BUS",
            crate::store::layout::TaskDir::at(run.task_dir.to_path_buf())
                .bus()
                .display()
                .to_string(),
        );
        set("JRUN_TASK_FOLDER", run.task_dir.display().to_string());
        set("JRUN_RUN_FOLDER", run.run_dir.display().to_string());
        set("CONDUCTOR_WORKFLOW", self.workflow.clone());
        set("CONDUCTOR_NODE", node.clone());
        set("CONDUCTOR_INSTANCE", job.key.to_string());
        set("CONDUCTOR_ITEM", item_text(job.item.as_ref()));
        set("CONDUCTOR_ITERATION", run.iteration.to_string());
        set("CONDUCTOR_APPLY_ID", self.apply_id.clone());
        // Names, never values: what `conductor bus post` run by the agent
        // redacts from what it posts.
        set(crate::secrets::SECRET_NAMES, self.secrets.join(","));
        env
    }

    pub(crate) fn stop_level(&self) -> StopLevel {
        self.supervisor.stop_level()
    }
}

/// An item as text: strings as they are, anything else as JSON.
pub(super) fn item_text(item: Option<&serde_json::Value>) -> String {
    match item {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// PATH for agents: conductor's own folder first, so `conductor bus post` works.
pub(crate) fn agent_path(exe: &Path) -> String {
    let own = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(own).chain(std::env::split_paths(&rest));
    std::env::join_paths(dirs).map_or_else(
        |_| rest.to_string_lossy().into_owned(),
        |p| p.to_string_lossy().into_owned(),
    )
}
