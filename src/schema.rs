//! Owns the JSON Schema of the workflow format, generated from the model types
//! (schemars) and checked in as `schemas/workflow.schema.json`. The decoder
//! asks it which keys each table allows, so the schema and the checks cannot
//! drift apart.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::model::Workflow;

/// The schema as JSON.
pub fn workflow_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Workflow)).unwrap_or_default();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".to_string(),
            serde_json::Value::from("https://conductor.dev/schemas/workflow.schema.json"),
        );
    }
    schema
}

/// The schema as the pretty text that is checked in.
pub fn workflow_schema_text() -> String {
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
