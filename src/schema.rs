//! Owns the JSON Schema of the workflow format, generated from the model types
//! (schemars) and checked in as `schemas/workflow.schema.json`. The decoder
//! asks it which keys each table allows, so the schema and the checks cannot
//! drift apart.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::model::Workflow;

/// The schema as JSON.
pub(crate) fn workflow_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Workflow)).unwrap_or_default();
    drop_null(&mut schema);
    schema
}

/// TOML and KDL have no null: an optional key is one that is left out. The
/// schema derived from `Option<T>` allows null; take that out.
fn drop_null(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".to_string(), only);
                }
            }
            for key in ["anyOf", "oneOf"] {
                if let Some(serde_json::Value::Array(options)) = map.get_mut(key) {
                    options.retain(|o| o.get("type").is_none_or(|t| t != "null"));
                    if options.len() == 1 {
                        let only = options.remove(0);
                        map.remove(key);
                        if let serde_json::Value::Object(inner) = only {
                            for (k, val) in inner {
                                map.entry(k).or_insert(val);
                            }
                        }
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// The schema as the pretty text that is checked in.
pub(crate) fn workflow_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&workflow_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The keys a table of the named schema definition allows, in schema order.
/// `"Workflow"` names the top level.
pub(crate) fn keys(def: &str) -> &'static [String] {
    static KEYS: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    let all = KEYS.get_or_init(|| {
        let schema = workflow_schema();
        let props = |v: &serde_json::Value| -> Vec<String> {
            v.get("properties")
                .and_then(serde_json::Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default()
        };
        let mut map = HashMap::new();
        map.insert("Workflow".to_string(), props(&schema));
        if let Some(defs) = schema.get("$defs").and_then(serde_json::Value::as_object) {
            for (name, def) in defs {
                map.insert(name.clone(), props(def));
            }
        }
        map
    });
    all.get(def).map_or(&[], Vec::as_slice)
}
