//! Owns `unit.json`, what the dispatcher tells a unit that runs elsewhere
//! (docs/distributed.md, "The unit"): the workflow to plan again and its
//! params, the apply it belongs to, which instance to run and what the
//! dispatcher alone knows of it (its `needs` value, its round, whether it
//! resumes, its fingerprint). Written into the task folder before the job
//! is submitted, read by `conductor __unit` on the worker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::incremental::fingerprint::Fingerprint;

/// The version of the format: a worker running another conductor refuses
/// a spec it cannot read rather than misreading it.
pub(crate) const VERSION: u32 = 1;

/// One unit: an instance's whole Ralph loop.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UnitSpec {
    pub version: u32,
    /// The workflow file, absolute, as the dispatcher planned it.
    pub file: PathBuf,
    /// Its `--set` params.
    pub sets: Vec<String>,
    /// The runs root, absolute.
    pub root: PathBuf,
    pub apply_id: String,
    /// RFC 3339.
    pub apply_start: String,
    pub continued: bool,
    /// The instance key.
    pub key: String,
    /// Its node's id, and the item of a run-time fan-out's instance (which
    /// the worker's plan does not hold: it is made from an answer).
    pub node: String,
    pub item: Option<serde_json::Value>,
    pub round: u32,
    pub resume: bool,
    /// `needs` as its templates see it.
    pub needs: serde_json::Value,
    /// A looping sub-workflow's previous round, when there was one.
    pub group_previous: Option<serde_json::Value>,
    pub fingerprint: Fingerprint,
    #[serde(with = "millis")]
    pub grace: Duration,
    pub containment: crate::process::Containment,
    /// The apply's budget in US dollars; what was spent is read from the
    /// file the dispatcher keeps (`ProjectDir::spent`).
    pub budget_usd: Option<f64>,
    /// An isolated instance's repository and base commit, as the
    /// dispatcher resolved them (docs/isolation.md).
    #[serde(default)]
    pub isolation: Option<crate::runner::job::Isolated>,
    /// Its isolated needs' branches, merged into its worktree first.
    #[serde(default)]
    pub merge: Vec<crate::runner::merge::Source>,
}

/// A spec that cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpecError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a unit spec: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{} is a unit spec of version {found}; this conductor reads version {VERSION}: run the same conductor on the workers as on the submitting host",
        path.display()
    )]
    Version { path: PathBuf, found: u32 },
}

impl UnitSpec {
    pub(crate) fn read(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let spec: Self = serde_json::from_slice(&text).map_err(|source| SpecError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if spec.version != VERSION {
            return Err(SpecError::Version {
                path: path.to_path_buf(),
                found: spec.version,
            });
        }
        Ok(spec)
    }

    pub(crate) fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::store::write_atomic(path, &text)
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
