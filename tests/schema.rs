//! `conductor schema` and the checked-in schema agree, and every committed
//! workflow is valid against that schema (so editors using it agree with
//! `conductor validate`).

use crate::support::{root, run, stdout, workflow_files};

#[test]
fn checked_in_schema_is_current() {
    let out = run(&["schema"]);
    assert!(out.status.success());
    let checked_in = std::fs::read_to_string(root().join("schemas/workflow.schema.json"))
        .expect("schemas/workflow.schema.json exists");
    assert_eq!(
        stdout(&out),
        checked_in,
        "schemas/workflow.schema.json is stale: run `cargo run -- schema > schemas/workflow.schema.json`"
    );
}

#[test]
fn committed_toml_workflows_satisfy_the_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/workflow.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    let mut files = workflow_files(&root().join("examples"));
    files.extend(workflow_files(&root().join("workflows")));
    let mut checked = 0;
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "toml"))
    {
        let value: toml::Value = toml::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let json = serde_json::to_value(value).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not satisfy the schema: {errors:#?}",
            f.display()
        );
        checked += 1;
    }
    assert!(checked >= 3);
}

#[test]
fn schema_rejects_unknown_keys() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schemas/workflow.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let bad = serde_json::json!({"version": 1, "name": "x", "nodes": {"a": {"prompt": "p", "stop": {"max_iteratons": 3}}}});
    assert!(!validator.is_valid(&bad));
    let good = serde_json::json!({"version": 1, "name": "x", "nodes": {"a": {"prompt": "p", "stop": {"max_iterations": 3}}}});
    assert!(
        validator.is_valid(&good),
        "{:?}",
        validator
            .iter_errors(&good)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
}

#[test]
fn completions_cover_every_subcommand() {
    let out = run(&["completions", "bash"]);
    assert!(out.status.success());
    let script = stdout(&out);
    for sub in ["validate", "plan", "schema", "bus"] {
        assert!(script.contains(sub), "no {sub} in the bash completions");
    }
}
