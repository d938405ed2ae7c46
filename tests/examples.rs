//! Every workflow committed in `examples/` and `workflows/` is valid, and
//! each TOML file's KDL twin plans to the same bytes.

use crate::support::{required_params, root, workflow_files};
use crate::test_builder::Test;

#[test]
fn every_committed_workflow_validates() {
    let mut files = workflow_files(&root().join("examples"));
    files.extend(workflow_files(&root().join("workflows")));
    assert!(
        files.len() >= 4,
        "expected the examples and the session workflow, found {files:?}"
    );
    for f in files {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        Test::in_repo()
            .args(["validate", &rel])
            .args(required_params(&f))
            .stderr_has("valid (")
            .run();
    }
}

#[test]
fn toml_and_kdl_twins_plan_byte_for_byte() {
    let mut pairs = 0;
    for dir in ["examples", "workflows"] {
        for toml in workflow_files(&root().join(dir))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        {
            let kdl = toml.with_extension("kdl");
            if !kdl.exists() {
                continue;
            }
            pairs += 1;
            let plan = |file: &std::path::Path| {
                Test::in_repo()
                    .args(["plan", "--json", "--show-prompts"])
                    .arg(file)
                    .args(required_params(file))
                    .run()
                    .stdout
            };
            assert_eq!(
                plan(&toml),
                plan(&kdl),
                "{} and its KDL twin plan differently",
                toml.display()
            );
        }
    }
    assert!(
        pairs >= 2,
        "expected the hello example and the session workflow to have KDL twins"
    );
}

#[test]
fn every_example_applies_without_an_ai() {
    for name in ["hello", "library"] {
        for file in ["workflow.toml", "workflow.kdl"] {
            let path = crate::support::root()
                .join("examples")
                .join(name)
                .join(file);
            if !path.exists() {
                continue;
            }
            let runs = tempfile::tempdir().unwrap();
            Test::in_repo()
                .env("CONDUCTOR_ROOT", runs.path())
                .arg("apply")
                .arg(&path)
                .run();
        }
    }
}
