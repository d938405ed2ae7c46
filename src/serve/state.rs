//! Owns what every request shares: the options, the address the server
//! answers on (for the Origin and Host checks), and the plans of applied
//! workflows, made again only when their file changes (making a plan of
//! 10,000 instances on every refresh of a page would be its whole cost).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::documents::Documents;
use super::error::ApiError;
use super::options::ServeOptions;
use crate::bus::Message;
use crate::plan::Plan;
use crate::store::layout::ProjectDir;

/// A workflow file and the `--set`s it was applied with.
type PlanKey = (PathBuf, String);
/// Its file's modification time when planned, and the plan (none when it
/// did not plan).
type Planned = (Option<SystemTime>, Option<Arc<Plan>>);

/// The server's shared state.
#[derive(Debug)]
pub(super) struct Server {
    pub options: ServeOptions,
    /// `host:port` the server is reached at, as browsers send it.
    pub hosts: Vec<String>,
    plans: Mutex<HashMap<PlanKey, Planned>>,
    /// The documents of the applies pages follow.
    pub documents: Documents,
}

impl Server {
    pub(super) fn new(options: ServeOptions, port: u16) -> Self {
        let mut hosts = vec![format!("{}:{port}", host_of(&options))];
        if options.bind.ip().is_loopback() {
            for h in ["127.0.0.1", "localhost", "[::1]"] {
                hosts.push(format!("{h}:{port}"));
            }
        }
        hosts.dedup();
        Self {
            options,
            hosts,
            plans: Mutex::new(HashMap::new()),
            documents: Documents::default(),
        }
    }

    /// `<root>/<project>`, for a project segment already checked.
    pub(super) fn project_dir(&self, project: &str) -> Result<PathBuf, ApiError> {
        let dir = ProjectDir::new(&self.options.root, project)
            .path()
            .to_path_buf();
        if !dir.is_dir() {
            return Err(ApiError::NotFound(format!(
                "no project `{project}` under the root"
            )));
        }
        Ok(dir)
    }

    /// The plan of the apply `start` began, when its workflow file is
    /// known and still plans.
    pub(super) fn plan(&self, start: &Message) -> Option<Arc<Plan>> {
        let file = PathBuf::from(start.meta.get("file")?);
        let sets = start.meta.get("sets").cloned().unwrap_or_default();
        let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
        let key = (file.clone(), sets);
        if let Ok(plans) = self.plans.lock()
            && let Some((at, plan)) = plans.get(&key)
            && *at == modified
        {
            return plan.clone();
        }
        let plan = crate::view::plan::of(&file, start).map(Arc::new);
        if let Ok(mut plans) = self.plans.lock() {
            plans.insert(key, (modified, plan.clone()));
        }
        plan
    }

    /// A workflow file under `--workflows`, by its path relative to it.
    pub(super) fn workflow_file(&self, relative: &str) -> Result<PathBuf, ApiError> {
        let Some(dir) = &self.options.workflows else {
            return Err(ApiError::Forbidden(
                "this server starts no workflow: run it with --workflows DIR".into(),
            ));
        };
        let path = Path::new(relative);
        let inside = path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        let found = dir.join(path);
        if !inside
            || !crate::view::workflows::list(dir)
                .iter()
                .any(|w| w.file == relative)
        {
            return Err(ApiError::NotFound(format!(
                "no workflow file `{relative}` under --workflows"
            )));
        }
        Ok(found)
    }
}

fn host_of(options: &ServeOptions) -> String {
    match options.bind.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    }
}
