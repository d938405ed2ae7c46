//! Static fan-out: glob items found on disk, matrix crosses, and the instance
//! keys (docs/workflow-format.md, "Fan-out").

use std::path::Path;

use globset::GlobBuilder;

/// A glob fan-out that cannot be expanded.
#[derive(Debug, thiserror::Error)]
pub(super) enum GlobError {
    #[error("{}", .0.kind())]
    Pattern(globset::Error),
    /// The folder, as shown to the user.
    #[error("the folder {0} does not exist")]
    NoFolder(String),
}

/// The files under `base` that `crate::walk` counts and `glob` matches
/// (relative, `/`-separated, sorted).
pub(super) fn glob_items(
    base: &Path,
    glob: &str,
    runs_root: Option<&Path>,
) -> Result<Vec<String>, GlobError> {
    let matcher = GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(GlobError::Pattern)?
        .compile_matcher();
    if !base.is_dir() {
        return Err(GlobError::NoFolder(crate::source::display_name(base)));
    }
    let mut out: Vec<String> = crate::walk::files(base, runs_root)
        .filter_map(|e| {
            let rel = e.path().strip_prefix(base).ok()?;
            matcher
                .is_match(rel)
                .then(|| rel.to_string_lossy().replace('\\', "/"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Every combination of the matrix axes, in axis order.
pub(super) fn matrix_combos(
    axes: &[(String, Vec<serde_json::Value>)],
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut combos = vec![serde_json::Map::new()];
    for (axis, values) in axes {
        combos = combos
            .iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut next = c.clone();
                    next.insert(axis.clone(), v.clone());
                    next
                })
            })
            .collect();
    }
    combos
}

/// The key of an item: a string is itself, anything else a short hash of its
/// canonical JSON.
pub(super) fn item_key(item: &serde_json::Value) -> String {
    match item {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        other => {
            let canonical = serde_json::to_string(&canonicalize(other)).unwrap_or_default();
            crate::store::short_hash(&canonical, 4)
        }
    }
}

/// Objects with sorted keys, so that key order never changes a hash.
fn canonicalize(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonicalize(&m[k])))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => a.iter().map(canonicalize).collect(),
        other => other.clone(),
    }
}

/// `node`, `node[item]`, `node[k=v,..]` or `node[item][k=v,..]`.
pub(crate) fn instance_key(
    node: &str,
    item: Option<&serde_json::Value>,
    matrix: Option<&serde_json::Map<String, serde_json::Value>>,
) -> String {
    let mut key = node.to_string();
    if let Some(item) = item {
        key.push('[');
        key.push_str(&item_key(item));
        key.push(']');
    }
    if let Some(m) = matrix.filter(|m| !m.is_empty()) {
        let parts: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", item_key(v)))
            .collect();
        key.push('[');
        key.push_str(&parts.join(","));
        key.push(']');
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_design() {
        let item = serde_json::json!("docs/a.md");
        assert_eq!(
            instance_key("review", Some(&item), None),
            "review[docs/a.md]"
        );
        let m = serde_json::json!({"agent": "claude", "model": "x"});
        assert_eq!(
            instance_key("n", None, m.as_object()),
            "n[agent=claude,model=x]"
        );
        let a = serde_json::json!({"b": 1, "a": 2});
        let b = serde_json::json!({"a": 2, "b": 1});
        assert_eq!(item_key(&a), item_key(&b));
        assert_eq!(item_key(&a).len(), 8);
    }

    #[test]
    fn matrix_crosses_in_axis_order() {
        let axes = vec![
            (
                "agent".to_string(),
                vec![serde_json::json!("a"), serde_json::json!("b")],
            ),
            (
                "model".to_string(),
                vec![serde_json::json!("x"), serde_json::json!("y")],
            ),
        ];
        let combos = matrix_combos(&axes);
        assert_eq!(combos.len(), 4);
        assert_eq!(combos[1]["model"], "y");
    }
}
