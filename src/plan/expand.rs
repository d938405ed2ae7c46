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

/// The fields whose value names a JSON item, in the order they are looked
/// for (docs/workflow-format.md, "Instance keys").
const NAMING_FIELDS: &[&str] = &["name", "id", "title", "key"];

/// The most characters of a name an instance key keeps.
const LABEL_CHARS: usize = 48;

/// How an item reads in its instance's key: a string as it is, a number or
/// a boolean as written, an object by its `name`, `id`, `title` or `key`
/// (slugged), anything else by a short hash of its JSON.
fn label(item: &serde_json::Value) -> String {
    let named = item.as_object().and_then(|o| {
        NAMING_FIELDS.iter().find_map(|f| match o.get(*f) {
            Some(serde_json::Value::String(s)) => Some(slug(s)).filter(|s| !s.is_empty()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    });
    named.unwrap_or_else(|| item_key(item))
}

/// Lower case letters and digits, `.` and `_`; anything else one `-`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(LABEL_CHARS).collect()
}

/// The labels of one list of items in their instance keys: [`label`]s,
/// unique among different items. Where two different items read alike, the
/// ones that are not plain strings get `~` and a short hash of their JSON
/// (a string item is always itself). The same item twice keeps one label:
/// it is a duplicate, which `validate` reports.
pub(crate) fn labels<'v>(items: impl IntoIterator<Item = &'v serde_json::Value>) -> Vec<String> {
    let items: Vec<&serde_json::Value> = items.into_iter().collect();
    let labels: Vec<String> = items.iter().map(|i| label(i)).collect();
    unique(&items, &labels, true)
}

/// As [`labels`], each item read as the text its node's `key` template
/// made of it (slugged; an empty one falls back to the item's own label).
pub(crate) fn labels_named(items: &[&serde_json::Value], named: &[String]) -> Vec<String> {
    let labels: Vec<String> = items
        .iter()
        .zip(named)
        .map(|(item, name)| {
            Some(slug(name))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| label(item))
        })
        .collect();
    unique(items, &labels, false)
}

/// `labels`, with `~hash` added where different items read alike (but to
/// a plain string that reads as itself, when `strings_are_themselves`).
fn unique(
    items: &[&serde_json::Value],
    labels: &[String],
    strings_are_themselves: bool,
) -> Vec<String> {
    let mut identities: std::collections::HashMap<&str, std::collections::HashSet<String>> =
        std::collections::HashMap::new();
    for (item, l) in items.iter().zip(labels) {
        identities
            .entry(l.as_str())
            .or_default()
            .insert(item_key(item));
    }
    items
        .iter()
        .zip(labels)
        .map(|(item, l)| {
            let shared = identities.get(l.as_str()).is_some_and(|ids| ids.len() > 1);
            if shared && !(strings_are_themselves && item.is_string()) {
                format!("{l}~{}", item_key(item))
            } else {
                l.clone()
            }
        })
        .collect()
}

/// `node`, `node[item]`, `node[k=v,..]` or `node[item][k=v,..]`, with the
/// item as its label reads (see [`labels`]).
pub(crate) fn instance_key(
    node: &str,
    item: Option<&str>,
    matrix: Option<&serde_json::Map<String, serde_json::Value>>,
) -> String {
    let mut key = node.to_string();
    if let Some(item) = item {
        key.push('[');
        key.push_str(item);
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
            instance_key("review", Some(&labels([&item])[0]), None),
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
    fn a_json_item_reads_as_its_name_and_stays_unique() {
        let items = [
            serde_json::json!({"title": "Word Count!", "n": 1}),
            serde_json::json!({"id": 7}),
            serde_json::json!({"name": "twin", "v": 1}),
            serde_json::json!({"name": "twin", "v": 2}),
            serde_json::json!({"other": true}),
            serde_json::json!("twin"),
            serde_json::json!({"name": "", "id": "x"}),
        ];
        let got = labels(&items);
        assert_eq!(got[0], "word-count");
        assert_eq!(got[1], "7");
        assert!(got[2].starts_with("twin~") && got[3].starts_with("twin~"));
        assert_ne!(got[2], got[3]);
        assert_eq!(got[4], item_key(&items[4]));
        assert_eq!(got[5], "twin");
        assert_eq!(got[6], "x");
        // One item twice keeps one label: a duplicate, not two instances.
        let twice = [
            serde_json::json!({"name": "a"}),
            serde_json::json!({"name": "a"}),
        ];
        assert_eq!(labels(&twice), ["a", "a"]);
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
