//! Owns the fingerprint type (docs/watch.md): what a completed run of an
//! instance depended on, so that `apply` can tell an instance that is up
//! to date from one that changed, and `plan` can say what changed. A
//! fingerprint is a set of named parts (the instance's definition, its
//! prompt and params, its agents with their CLI versions, its stop and
//! output settings), the templates it includes, the content of its
//! `inputs`, and the fingerprints of the instances it needs. Not hashed:
//! the preamble (its paths change per apply) and upstream output text
//! (the upstream fingerprint stands for it). What goes into each part is
//! `super::parts`'.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::digest::{hex, short};
use super::inputs::InputHasher;
use crate::store::layout::TaskDir;

/// What one instance's run depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    /// SHA-256 over everything below, in hex.
    pub hash: String,
    pub parts: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstream: BTreeMap<String, String>,
}

impl Fingerprint {
    #[must_use]
    pub(super) fn seal(mut self) -> Self {
        let mut h = Sha256::new();
        for (section, map) in [
            ("parts", &self.parts),
            ("templates", &self.templates),
            ("inputs", &self.inputs),
            ("upstream", &self.upstream),
        ] {
            h.update(section.as_bytes());
            for (k, v) in map {
                h.update([0]);
                h.update(k.as_bytes());
                h.update([1]);
                h.update(v.as_bytes());
            }
            h.update([2]);
        }
        self.hash = hex(&h.finalize());
        self
    }

    /// The fingerprint of one item of a run-time fan-out: the placeholder's,
    /// plus the item and (for `each_of`) the mirrored source instance.
    #[must_use]
    pub(crate) fn child(&self, item: &serde_json::Value, source: Option<(&str, &str)>) -> Self {
        let mut fp = self.clone();
        fp.parts.insert("item".into(), short(&item.to_string()));
        if let Some((key, hash)) = source {
            fp.upstream.insert(key.to_string(), hash.to_string());
        }
        fp.seal()
    }

    /// The same, with the upstream instances' final fingerprints (taken when
    /// they ended, which may differ from the plan's).
    #[must_use]
    pub(crate) fn with_upstream(&self, upstream: BTreeMap<String, String>) -> Self {
        if upstream == self.upstream {
            return self.clone();
        }
        let mut fp = self.clone();
        fp.upstream = upstream;
        fp.seal()
    }

    /// The same, with the inputs as they are now: taken when an instance
    /// completes, so that what its own agent wrote into its inputs is part
    /// of its result, not a change that runs it again.
    #[must_use]
    pub(crate) fn with_inputs_now(
        &self,
        workdir: &Path,
        patterns: &[String],
        runs_root: &Path,
    ) -> Self {
        if patterns.is_empty() {
            return self.clone();
        }
        let mut hasher = InputHasher::new(runs_root.to_path_buf());
        self.with_inputs(&hasher.hash(workdir, patterns))
    }

    /// The same, with these hashes of its inputs.
    #[must_use]
    pub(crate) fn with_inputs(&self, now: &super::inputs::InputHashes) -> Self {
        if *now == self.inputs {
            return self.clone();
        }
        let mut fp = self.clone();
        fp.inputs.clone_from(now);
        fp.seal()
    }

    /// What differs from `old`, in words: `prompt`, `input src/a.rs`, ..
    pub(crate) fn changes(&self, old: &Self) -> Vec<String> {
        let mut out = Vec::new();
        let mut diff =
            |what: &str, new: &BTreeMap<String, String>, old: &BTreeMap<String, String>| {
                for (k, v) in new {
                    match old.get(k) {
                        Some(o) if o == v => {}
                        Some(_) => out.push(label(what, k, "")),
                        None => out.push(label(what, k, " (new)")),
                    }
                }
                for k in old.keys().filter(|k| !new.contains_key(*k)) {
                    out.push(label(what, k, " (gone)"));
                }
            };
        diff("", &self.parts, &old.parts);
        diff("template", &self.templates, &old.templates);
        diff("input", &self.inputs, &old.inputs);
        diff("upstream", &self.upstream, &old.upstream);
        out
    }

    /// Reads the fingerprint saved in a task folder.
    pub(crate) fn load(task: &TaskDir) -> Option<Self> {
        let text = std::fs::read_to_string(task.fingerprint()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Saves it in a task folder.
    pub(crate) fn save(&self, task: &TaskDir) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::store::write_atomic_fast(&task.fingerprint(), &text)
    }
}

fn label(what: &str, key: &str, suffix: &str) -> String {
    match what {
        "" => format!("{key}{suffix}"),
        "upstream" => format!("upstream `{key}`{suffix}"),
        _ => format!("{what} {key}{suffix}"),
    }
}

/// The fingerprint a run-time fan-out stands for once expanded: its own
/// and its instances' final ones, in item order.
pub(crate) fn combined(own: &str, instances: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(own.as_bytes());
    for i in instances {
        h.update([0]);
        h.update(i.as_bytes());
    }
    hex(&h.finalize())
}
