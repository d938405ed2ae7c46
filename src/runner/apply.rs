//! Owns one `conductor apply` from a checked plan to its summary: the runs
//! root prepared and the environment checked before anything starts (exit
//! 3 otherwise), the session opened, the jobs prepared and run, and the
//! apply's closing record (`WORKFLOW_STOP`) on the project bus.

use super::options::ApplyOptions;
use std::sync::Arc;

use super::error::ApplyError;
use super::event::Observer;
use super::summary::Summary;
use super::{prepare, session};
use crate::compile::Program;
use crate::plan::Plan;

/// Runs `plan`, with the keeper `launch` started if given; `observer` sees
/// every event as it happens.
pub(crate) fn apply(
    program: Program,
    plan: &Plan,
    options: &ApplyOptions,
    observer: &mut dyn Observer,
    launch: Option<crate::process::keeper::Launch>,
) -> Result<Summary, ApplyError> {
    let mut session = match session::Session::open(&program, options, observer, launch) {
        Ok(s) => s,
        Err(e) => {
            // A bad invocation is reported as such even when the
            // environment is wrong too.
            prepare::check_invocation(&program, plan, options)?;
            return Err(e);
        }
    };
    let mut inputs = crate::incremental::inputs::InputHasher::new(session.root.clone());
    let prepared =
        match session
            .preparer()
            .prepare_telling(&program, plan, &mut inputs, &mut |programs| {
                observer.event(&super::event::Event::AskingVersions {
                    programs: programs.to_vec(),
                });
            }) {
            Ok(p) => p,
            Err(e) => {
                session.close();
                return Err(e);
            }
        };
    let summary = session.run(
        Arc::new(program),
        Arc::new(plan.success.clone()),
        prepared,
        observer,
        None,
        None,
    );
    session.close();
    summary
}
