//! `conductor plan`: instances after fan-out, keys, needs, limits, the worst
//! case, and the JSON, DOT and prompt views; the full text of each view of
//! every committed workflow is pinned by a snapshot.
//!
//! After changing what `plan` prints on purpose, review the new views with
//! `INSTA_UPDATE=always cargo test plan::` and read the changed `.snap`
//! files before committing them.

use crate::support::{root, workflow_files};
use crate::test_builder::{Ran, Test};

const FANOUT: &str = "tests/fixtures/valid/fanout/workflow.toml";

/// `conductor plan ARGS` from the repository root, which must succeed.
fn plan(args: &[&str]) -> Ran {
    Test::in_repo().arg("plan").args(args).run()
}

#[test]
fn hello_plan_lists_instances_and_worst_case() {
    let ran = Test::in_repo()
        .args(["plan", "examples/hello/workflow.toml"])
        .stdout_has("greet[world]")
        .stdout_has("greet[conductor]")
        .stdout_has("worst case: 3 instances, 3 agent runs")
        .run();
    let text = &ran.stdout;
    assert!(
        text.contains("needs:  greet[conductor], greet[world]")
            || text.contains("needs:  greet[world], greet[conductor]"),
        "{text}"
    );
}

#[test]
fn every_kind_of_fan_out_expands() {
    let ran = plan(&["--json", FANOUT]);
    let plan = ran.json();
    assert_eq!(
        plan.as_object().unwrap().keys().next().map(String::as_str),
        Some("format_version")
    );
    let keys = ran.keys();
    for expected in [
        "docs[docs/a.md]",
        "docs[docs/b.md]",
        "fix[docs/a.md]",
        "compare[agent=echo,model=small]",
        "compare[agent=other,model=big]",
        "tasks[*]",
        "quorum",
        "review/read",
        "review/verdict",
    ] {
        assert!(
            keys.contains(&expected.to_string()),
            "{expected} missing from {keys:?}"
        );
    }
    assert!(
        !keys.iter().any(|k| k.contains("c.txt")),
        "the glob is docs/*.md: {keys:?}"
    );
    let inst = |k: &str| ran.instance(k);
    assert_eq!(
        inst("fix[docs/b.md]")["needs"],
        serde_json::json!(["docs[docs/b.md]"]),
        "each_of mirrors one to one"
    );
    assert_eq!(inst("tasks[*]")["type"], "fan_out");
    assert_eq!(inst("tasks[*]")["max_items"], 5);
    assert_eq!(inst("quorum")["type"], "gate");
    assert_eq!(
        inst("review/read")["needs"],
        serde_json::json!(["quorum"]),
        "sub-workflow roots wait for the node's needs"
    );
    assert_eq!(
        inst("review/read")["stop"]["budget_usd"],
        0.5,
        "sub-workflow nodes inherit the parent's defaults"
    );
    assert_eq!(
        inst("compare[agent=other,model=big]")["agent"]["name"],
        "other"
    );
    assert_eq!(
        inst("plan")["stop"]["success"],
        serde_json::json!({"exit_zero": true})
    );
    assert_eq!(
        inst("docs[docs/a.md]")["stop"]["success"],
        serde_json::json!({"done_file": true}),
        "process agents default to done_file"
    );
    assert_eq!(plan["worst_case"]["agent_runs"], 46);
    assert_eq!(plan["worst_case"]["budget_usd"], 8.0);
}

#[test]
fn instances_come_in_dependency_order() {
    let ran = plan(&["--json", FANOUT]);
    let keys = ran.keys();
    for inst in ran.json()["instances"].as_array().unwrap() {
        let me = keys
            .iter()
            .position(|k| k == inst["key"].as_str().unwrap())
            .unwrap();
        for need in inst["needs"].as_array().unwrap() {
            let at = keys
                .iter()
                .position(|k| k == need.as_str().unwrap())
                .unwrap();
            assert!(at < me, "{need} comes after {}", inst["key"]);
        }
    }
}

#[test]
fn set_overrides_a_param_and_reaches_the_prompts() {
    let ran = plan(&[
        "--json",
        "--show-prompts",
        "--set",
        "model=huge",
        "--set",
        "rounds=7",
        FANOUT,
    ]);
    assert_eq!(ran.json()["params"]["model"], "huge");
    assert_eq!(ran.json()["params"]["rounds"], 7);
    assert_eq!(
        ran.instance("docs[docs/a.md]")["prompt"],
        "Review docs/a.md (7 rounds)."
    );
    assert_eq!(
        ran.instance("review/verdict")["prompt"],
        "Verdict on huge: <output of review/read>"
    );
}

#[test]
fn plan_json_has_no_absolute_paths() {
    Test::in_repo()
        .args(["plan", "--json", "--show-prompts", FANOUT])
        .stdout_lacks(root().to_str().unwrap())
        .run();
}

#[test]
fn dot_output_is_graphviz() {
    let dot = plan(&["--dot", "examples/hello/workflow.toml"]).stdout;
    assert!(dot.starts_with("digraph "), "{dot}");
    assert_eq!(
        dot.matches(" -> ").count(),
        2,
        "summary needs both greet instances: {dot}"
    );
}

#[test]
fn show_prompts_prints_rendered_prompts() {
    Test::in_repo()
        .args(["plan", "--show-prompts", FANOUT])
        .stdout_has("| Review docs/b.md (2 rounds).")
        .stdout_has("the plan said <json of plan.summary>")
        .run();
}

#[test]
fn prompt_libraries_extend_import_and_include() {
    Test::in_repo()
        .args(["plan", "--show-prompts", "examples/library/workflow.toml"])
        // `extends "base.md"`: the base layout's heading around the child's block.
        .stdout_has("| ## Task")
        // `import "macros.md"`: the checklist macro rendered the outline's sections.
        .stdout_has("| - [ ] overview")
        // `include "partials/house-rules.md"`.
        .stdout_has("| - Every code example must run as written.")
        // The sub-workflow's nodes are namespaced under the node that uses it.
        .stdout_has("review/")
        .run();
}

#[test]
fn every_committed_workflow_plans_as_its_snapshots() {
    let mut files = workflow_files(&root().join("examples"));
    files.extend(workflow_files(&root().join("workflows")));
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        let rel = file.strip_prefix(root()).unwrap().to_str().unwrap();
        for (view, flags) in [
            ("text", &[][..]),
            ("json", &["--json"]),
            ("dot", &["--dot"]),
        ] {
            let set = crate::support::required_params(&file);
            let set: Vec<&str> = set.iter().map(String::as_str).collect();
            let args = [&["plan", rel][..], flags, &set].concat();
            // The text view counts the instances that are up to date in the
            // runs root: a fresh, empty one makes that line the same on
            // every machine.
            let ran = Test::in_repo().args(&args).with_root().run();
            insta::with_settings!({
                description => format!("conductor {}", args.join(" ")),
                omit_expression => true,
            }, {
                insta::assert_snapshot!(format!("{}_{view}", rel.replace(['/', '.'], "_")), ran.stdout);
            });
        }
    }
}
