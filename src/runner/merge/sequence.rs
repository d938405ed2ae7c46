//! Owns the sequence of a merge node's run: in a worktree of its own, on
//! its own branch started from the target's tip (or the base), each branch
//! of the nodes it merges is merged in turn and `verify` run after it; a
//! branch that conflicts (and that no resolving agent resolves) or fails
//! `verify` is undone and left unmerged, saying why. At the end the target
//! branch is moved to the result, and the outcome says what was merged and
//! what was not.

use std::sync::Arc;
use std::time::Instant;

use super::report::{Left, Merged, Report, summary};
use super::start::{LoopRunner, MergeStart, Source, git};
use crate::isolation::landing::Step;
use crate::isolation::{Base, Place};
use crate::runner::event::Event;
use crate::runner::job::{Isolated, Job, MergeJob};
use crate::runner::outcome::{Outcome, Status, WorktreeResult};
use crate::runner::success_commands::run_success;
use crate::stop_reason::StopReason;
use crate::store::layout::TaskDir;

/// Runs one merge node to its end.
pub(crate) async fn run(start: MergeStart, run_loop: LoopRunner) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome::ended(Status::Failed, StopReason::WorktreeError);
    // Its task folder holds its fingerprint (so that a merge whose
    // branches are unchanged is up to date) and its report.
    // As a loop's first round names its task (`unit::task_id`).
    let task_id = crate::store::task_id(
        start.shared.apply_start,
        &start.shared.apply_id,
        &start.job.key,
    );
    let task = TaskDir::at(start.shared.project_dir.join(&task_id));
    out.task_id = Some(task_id);
    out.task_dir = Some(task.path().to_path_buf());
    if let Err(e) = crate::private::create_dir_all(task.path()) {
        out.stop_reason = StopReason::StoreError;
        out.error = Some(format!("cannot create {}: {e}", task.path().display()));
        return out;
    }
    let Some(iso) = start.job.isolation.clone() else {
        out.error = Some("the merge has no repository: its nodes are not isolated".into());
        return out;
    };
    let (place, was, held) = match open(&start.job, &start.merge, &iso).await {
        Ok(opened) => opened,
        Err(why) => {
            out.error = Some(why);
            out.duration = started.elapsed();
            return out;
        }
    };
    let mut report = Report {
        target: start
            .merge
            .into
            .clone()
            .unwrap_or_else(|| place.branch.clone()),
        branch: place.branch.clone(),
        ..Report::default()
    };
    let mut merge = Merging {
        run_loop: &run_loop,
        start: &start,
        place: &place,
        report: &mut report,
        usage: crate::agents::usage::Usage::default(),
    };
    for source in &start.sources {
        merge.one(source).await;
    }
    let usage = merge.usage;
    out.usage = usage;
    let mut landing_error = None;
    let stopped = start.stopping();
    if let Some(reason) = &stopped {
        // A stopped merge moves nothing of the person's.
        report.not_landed = Some(format!("the merge was stopped ({reason})"));
    } else if let Some(into) = &start.merge.into {
        let into = into.clone();
        match git(&place, move |p| p.land(&into, was.as_deref())).await {
            Ok(_) => report.landed = true,
            Err(why) => {
                report.not_landed = Some(why.clone());
                landing_error = Some(why);
            }
        }
    } else {
        report.landed = true;
    }
    drop(held);
    match git(&place, Place::changes).await {
        Ok(c) => {
            report.head.clone_from(&c.head);
            out.worktree = Some(Box::new(WorktreeResult {
                branch: report.target.clone(),
                path: place.path.clone(),
                base: place.base.commit.clone(),
                head: c.head,
                files: c.files,
                insertions: c.insertions,
                deletions: c.deletions,
                outside_writes: Vec::new(),
            }));
        }
        Err(e) => tracing::warn!("cannot read what the merge {} changed: {e}", start.job.key),
    }
    out.output = summary(&report);
    out.json = serde_json::to_value(&report).ok();
    out.merge = out.json.clone().map(Box::new);
    let saved = serde_json::to_vec_pretty(&report)
        .map_err(std::io::Error::other)
        .and_then(|bytes| crate::store::write_atomic_fast(&task.merge_report(), &bytes))
        .and_then(|()| start.job.fingerprint.save(&task));
    if let Err(e) = saved {
        out.stop_reason = StopReason::StoreError;
        out.status = Status::Failed;
        out.error = Some(format!(
            "cannot write the merge's report in {}: {e}",
            task.path().display()
        ));
        out.duration = started.elapsed();
        return out;
    }
    (out.status, out.stop_reason) = if let Some(reason) = stopped {
        (Status::Failed, reason)
    } else if report.unmerged.is_empty() && landing_error.is_none() {
        (Status::Done, StopReason::Merged)
    } else {
        (Status::Failed, StopReason::Unmerged)
    };
    out.error = landing_error.or_else(|| {
        (!report.unmerged.is_empty()).then(|| {
            report
                .unmerged
                .iter()
                .map(|l| format!("{} not merged: {}", l.instance, l.reason))
                .collect::<Vec<_>>()
                .join("; ")
        })
    });
    out.duration = started.elapsed();
    out
}

/// The merge's worktree, made ready on its branch from the target's tip
/// (the base when the target does not exist yet); the target's tip, and
/// the worktree's hold.
async fn open(
    job: &Job,
    merge: &MergeJob,
    iso: &Isolated,
) -> Result<(Arc<Place>, Option<String>, std::fs::File), String> {
    let was = match merge.into.clone() {
        None => None,
        Some(into) => {
            let repo = iso.base.repo.clone();
            tokio::task::spawn_blocking(move || {
                crate::isolation::git::Git::at(&repo)
                    .run(&[
                        "rev-parse",
                        "--verify",
                        "--quiet",
                        &format!("refs/heads/{into}"),
                    ])
                    .ok()
            })
            .await
            .ok()
            .flatten()
        }
    };
    let base = Base {
        commit: was.clone().unwrap_or_else(|| iso.base.commit.clone()),
        ..iso.base.clone()
    };
    let place = Place::new(&base, &iso.workflow, &job.key, &job.workdir)
        .map(Arc::new)
        .map_err(|e| e.to_string())?;
    let held = place.hold().map_err(|e| e.to_string())?;
    // What an earlier merge left uncommitted (a merge or a verify cut
    // short) is not work of anyone's: the merge starts clean.
    git(&place, |p| {
        p.discard_uncommitted()?;
        p.open(
            false,
            "conductor: what an interrupted merge left",
            &[],
            false,
        )
        .map(|_| ())
    })
    .await?;
    Ok((place, was, held))
}

/// The merge under way.
struct Merging<'a> {
    run_loop: &'a LoopRunner,
    start: &'a MergeStart,
    place: &'a Arc<Place>,
    report: &'a mut Report,
    usage: crate::agents::usage::Usage,
}

impl Merging<'_> {
    /// Merges one source's branch, verified, or leaves it unmerged.
    async fn one(&mut self, source: &Source) {
        let left = |reason: String, files: Vec<String>| Left {
            instance: source.instance.to_string(),
            branch: source.branch.clone(),
            reason,
            files,
        };
        if source.status != Status::Done {
            let why = format!(
                "it ended {} ({})",
                source.status.as_str(),
                source.stop_reason
            );
            self.report.not_done.push(left(why.clone(), Vec::new()));
            self.tell(source, Err(format!("not merged: {why}")));
            return;
        }
        if let Some(reason) = self.start.stopping() {
            self.leave(left(
                format!("the merge was stopped first ({reason})"),
                Vec::new(),
            ));
            return;
        }
        let before = match git(self.place, Place::head).await {
            Ok(h) => h,
            Err(why) => return self.leave(left(why, Vec::new())),
        };
        let message = format!(
            "conductor: merge {} ({}) into {}",
            source.instance, source.branch, self.report.target
        );
        let (branch, instance, msg) = (
            source.branch.clone(),
            source.instance.to_string(),
            message.clone(),
        );
        let how = match git(self.place, move |p| {
            p.merge_branch(&branch, &instance, &msg)
        })
        .await
        {
            Ok(Step::Already) => {
                self.merged(source, "already");
                return;
            }
            Ok(Step::Merged(_)) => "merged",
            Ok(Step::Conflict(files)) => {
                let resolved = match &self.start.merge.resolver {
                    Some(agent) => {
                        let (resolved, usage) = super::resolve::resolve(
                            super::resolve::Conflict {
                                owner: &self.start.job,
                                run_loop: self.run_loop,
                                stop: (&self.start.cancel, &self.start.stopped),
                                place: self.place,
                                target: &self.report.target,
                                resolver: &self.resolver_name(),
                                source,
                                files: &files,
                                message: &message,
                                before: &before,
                            },
                            agent,
                        )
                        .await;
                        self.usage.add(usage);
                        resolved
                    }
                    None => Err(format!("it conflicts in {}", files.join(", "))),
                };
                if let Err(why) = resolved {
                    self.undo(&before).await;
                    return self.leave(left(why, files));
                }
                "resolved"
            }
            Err(why) => return self.leave(left(why, Vec::new())),
        };
        for command in &self.start.merge.verify {
            let failed = match run_success(command, &self.place.workdir, &self.start.shared).await {
                Ok(c) if c.code == 0 => None,
                Ok(c) => Some(format!(
                    "`{command}` exited {}{}",
                    c.code,
                    c.tail
                        .lines()
                        .last()
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default()
                )),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = failed {
                self.undo(&before).await;
                // A verify cut short by a stop did not fail.
                let why = match self.start.stopping() {
                    Some(reason) => format!("the merge was stopped during `{command}` ({reason})"),
                    None => format!("verify failed: {why}"),
                };
                return self.leave(left(why, Vec::new()));
            }
        }
        if !self.start.merge.verify.is_empty() {
            // What a passing verify left (build output, a rewritten lock
            // file) is not merged work, and must not meet the next merge.
            match git(self.place, Place::head).await {
                Ok(merged) => self.undo(&merged).await,
                Err(why) => return self.leave(left(why, Vec::new())),
            }
        }
        self.merged(source, how);
    }

    fn merged(&mut self, source: &Source, how: &'static str) {
        let words = match how {
            "already" => "was already merged".to_string(),
            "resolved" => format!("merged, its conflicts resolved by {}", self.resolver_name()),
            _ => "merged".to_string(),
        };
        self.tell(source, Ok(words));
        self.report.merged.push(Merged {
            instance: source.instance.to_string(),
            branch: source.branch.clone(),
            how: how.to_string(),
        });
    }

    fn leave(&mut self, left: Left) {
        let _ = self.start.events.send(Event::Landed {
            key: Arc::clone(&self.start.job.key),
            instance: left.instance.clone().into(),
            branch: left.branch.clone(),
            target: self.report.target.clone(),
            result: Err(left.reason.clone()),
        });
        self.report.unmerged.push(left);
    }

    fn tell(&self, source: &Source, result: Result<String, String>) {
        let _ = self.start.events.send(Event::Landed {
            key: Arc::clone(&self.start.job.key),
            instance: Arc::clone(&source.instance),
            branch: source.branch.clone(),
            target: self.report.target.clone(),
            result,
        });
    }

    /// The resolving agent's name.
    fn resolver_name(&self) -> String {
        self.start
            .merge
            .resolver
            .as_ref()
            .map_or_else(|| "the resolving agent".to_string(), |r| r.name())
    }

    /// Puts the worktree back as it was before the branch was merged.
    async fn undo(&self, before: &str) {
        let before = before.to_string();
        if let Err(e) = git(self.place, move |p| p.undo_to(&before)).await {
            tracing::warn!("cannot undo a merge in {}: {e}", self.place.path.display());
        }
    }
}
