//! Owns the seam between deciding what runs and running it
//! (docs/architecture.md, "The launcher seam"). The dispatcher decides
//! which unit starts and when; a [`Launcher`] starts it somewhere and hands
//! back a future that ends with the unit's outcome, while the unit reports
//! what happens on the way as events. [`Local`] runs units as tasks of this
//! process; an executor that runs them elsewhere (a Slurm job, a Kubernetes
//! Job) implements the same calls and turns what its remote unit
//! writes into the same events. The in-process tests of the scheduling
//! rules use a launcher that returns scripted outcomes.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::context::Shared;
use super::event::Event;
use super::job::{AgentJob, Job, StopSpec};
pub(crate) use super::merge::MergeStart;
use super::outcome::Outcome;
use super::unit::Launch;

/// A started unit: it ends with the unit's outcome.
pub(crate) type UnitFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What starting an agent instance's Ralph loop takes.
#[derive(Debug)]
pub(crate) struct UnitStart {
    pub shared: Arc<Shared>,
    pub job: Arc<Job>,
    pub agent: Arc<AgentJob>,
    pub launch: Launch,
    /// Where the unit reports what happens (`InstanceStarted`, iterations).
    pub events: UnboundedSender<Event>,
}

/// What judging one round of a sub-workflow takes.
#[derive(Debug)]
pub(crate) struct GroupCheck {
    pub shared: Arc<Shared>,
    /// Its `[success]` commands.
    pub commands: Vec<String>,
    /// Where they run: the sub-workflow file's folder.
    pub workdir: PathBuf,
    pub stop: Option<Arc<StopSpec>>,
    /// The outcome of its result node's instance, when it ended.
    pub result: Option<Arc<Outcome>>,
    /// The round, from 1.
    pub round: u32,
}

/// Where units run.
pub(crate) trait Launcher {
    /// Starts one agent instance's Ralph loop.
    fn unit(&self, start: UnitStart) -> UnitFuture;

    /// Starts judging one round of a sub-workflow.
    fn group(&self, check: GroupCheck) -> UnitFuture;

    /// Starts a merge node: git work in the repository, which only this
    /// machine has.
    fn merge(&self, start: MergeStart) -> UnitFuture;
}

/// Runs units as tasks of this process: their agents are its children.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Local;

impl Launcher for Local {
    fn unit(&self, s: UnitStart) -> UnitFuture {
        Box::pin(super::unit::run(
            s.shared, s.job, s.agent, s.launch, s.events,
        ))
    }

    fn group(&self, c: GroupCheck) -> UnitFuture {
        Box::pin(async move {
            super::group::judge(c.shared, c.commands, &c.workdir, c.stop, c.result, c.round).await
        })
    }

    fn merge(&self, start: MergeStart) -> UnitFuture {
        let run_loop = super::unit::loop_runner(Arc::clone(&start.shared), start.events.clone());
        Box::pin(super::merge::run(start, run_loop))
    }
}
