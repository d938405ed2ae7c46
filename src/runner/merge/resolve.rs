//! Owns a conflict's resolution by a merge node's resolving agent: its
//! loop runs in the merge's worktree, with the stopped merge in place,
//! told as its `item` which branch conflicts in which files, what each
//! side changed and what the branch's instance was asked to do; then its
//! resolution is taken as the merge commit, or refused with the files it
//! left conflicted.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::start::{LoopRunner, Source, git};
use crate::agents::usage::Usage;
use crate::isolation::Place;
use crate::isolation::landing::Concluded;
use crate::runner::job::{AgentJob, Job, JobKind};
use crate::runner::outcome::Status;

/// The most of an instance's task a resolving agent is told.
const TASK_MAX: usize = 8_000;

/// A stopped merge, in a merge node's worktree or a fan-in instance's.
pub(crate) struct Conflict<'a> {
    /// The instance whose worktree it is (a merge node's, or a fan-in's).
    pub owner: &'a Arc<Job>,
    /// How the resolving agent's loop is run.
    pub run_loop: &'a LoopRunner,
    /// Its owner's cancellation (a re-plan) and stop (a person's).
    pub stop: (&'a CancellationToken, &'a CancellationToken),
    pub place: &'a Arc<Place>,
    /// The branch merged onto.
    pub target: &'a str,
    /// The resolving agent's name.
    pub resolver: &'a str,
    pub source: &'a Source,
    /// The conflicted files.
    pub files: &'a [String],
    /// The merge commit's message.
    pub message: &'a str,
    /// The worktree's commit before the merge began.
    pub before: &'a str,
}

/// Resolves the stopped merge of `source`'s branch: the merge commit, or
/// why it stays unmerged; and what the resolving agent used.
pub(crate) async fn resolve(
    c: Conflict<'_>,
    agent: &Arc<AgentJob>,
) -> (Result<String, String>, Usage) {
    let Conflict {
        owner,
        run_loop,
        stop,
        place,
        target,
        resolver: name,
        source,
        files,
        message,
        before,
    } = c;
    let owner_side = Owner {
        job: owner,
        run_loop,
        stop,
    };
    let (resolved, usage) = match run_agent(&owner_side, place, target, source, files, agent).await
    {
        Ok(usage) => (Ok(()), usage),
        Err((why, usage)) => (Err(why), usage),
    };
    if let Err(why) = resolved {
        return (
            Err(format!(
                "it conflicts in {}, and {name} did not resolve it ({why})",
                files.join(", ")
            )),
            usage,
        );
    }
    let (branch, before, files, message) = (
        source.branch.clone(),
        before.to_string(),
        files.to_vec(),
        message.to_string(),
    );
    let concluded = match git(place, move |p| {
        p.conclude(&branch, &before, &files, &message)
    })
    .await
    {
        Ok(Concluded::Committed(commit)) => Ok(commit),
        Ok(Concluded::Unresolved(left)) => {
            Err(format!("{name} left conflicts in {}", left.join(", ")))
        }
        Ok(Concluded::Abandoned(why)) => Err(format!("{name} did not finish the merge: {why}")),
        Err(e) => Err(e),
    };
    (concluded, usage)
}

/// Whose worktree the conflict is in, and how its agent loop runs.
struct Owner<'a> {
    job: &'a Arc<Job>,
    run_loop: &'a LoopRunner,
    stop: (&'a CancellationToken, &'a CancellationToken),
}

/// Runs the resolving agent's loop on the conflict: what it used, and why
/// it did not end done when it did not.
async fn run_agent(
    start: &Owner<'_>,
    place: &Arc<Place>,
    target: &str,
    source: &Source,
    files: &[String],
    agent: &Arc<AgentJob>,
) -> Result<Usage, (String, Usage)> {
    let (branch, shown) = (source.branch.clone(), files.to_vec());
    let (ours, theirs) = git(place, move |p| p.sides(&branch, &shown))
        .await
        .map_err(|e| (e, Usage::default()))?;
    let task = source
        .task_dir
        .as_ref()
        .and_then(|d| {
            std::fs::read_to_string(crate::store::layout::TaskDir::at(d.clone()).task_md()).ok()
        })
        .map(|t| cut(&t))
        .unwrap_or_default();
    let item = serde_json::json!({
        "instance": &*source.instance,
        "branch": source.branch,
        "target": target,
        "files": files,
        "ours": ours,
        "theirs": theirs,
        "task": task,
    });
    let job = Arc::new(Job {
        key: format!("{}[resolve {}]", start.job.key, source.instance).into(),
        node: start.job.node,
        item: Some(item),
        matrix: None,
        needs: Vec::new(),
        kind: JobKind::Agent(Arc::clone(agent)),
        workdir: place.workdir.clone(),
        env: start.job.env.clone(),
        on_failure: start.job.on_failure,
        fingerprint: Arc::clone(&start.job.fingerprint),
        forced: false,
        inputs: Vec::new(),
        isolation: None,
        writes: None,
    });
    let out = (start.run_loop)(
        job,
        Arc::clone(agent),
        (start.stop.0.clone(), start.stop.1.clone()),
    )
    .await;
    if out.status == Status::Done {
        Ok(out.usage)
    } else {
        let error = out.error.map(|e| format!(": {e}")).unwrap_or_default();
        Err((format!("{}{error}", out.stop_reason), out.usage))
    }
}

/// `text`, cut to [`TASK_MAX`] bytes.
fn cut(text: &str) -> String {
    let mut end = text.len().min(TASK_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
