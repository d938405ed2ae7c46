//! `conductor plan`: instances after fan-out, keys, needs, limits, the worst
//! case, and the JSON, DOT and prompt views.

use crate::support::{run, stderr, stdout};

const FANOUT: &str = "tests/fixtures/valid/fanout/workflow.toml";

fn plan_json(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("plan --json prints JSON")
}

fn keys(plan: &serde_json::Value) -> Vec<String> {
    plan["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn hello_plan_lists_instances_and_worst_case() {
    let out = run(&["plan", "examples/hello/workflow.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("greet[world]"), "{text}");
    assert!(text.contains("greet[conductor]"), "{text}");
    assert!(
        text.contains("needs:  greet[conductor], greet[world]")
            || text.contains("needs:  greet[world], greet[conductor]"),
        "{text}"
    );
    assert!(
        text.contains("worst case: 3 instances, 3 agent runs"),
        "{text}"
    );
}

#[test]
fn every_kind_of_fan_out_expands() {
    let plan = plan_json(&["plan", "--json", FANOUT]);
    assert_eq!(
        plan.as_object().unwrap().keys().next().map(String::as_str),
        Some("format_version")
    );
    let keys = keys(&plan);
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
    let inst = |k: &str| {
        plan["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["key"] == k)
            .unwrap()
            .clone()
    };
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
    let plan = plan_json(&["plan", "--json", FANOUT]);
    let keys = keys(&plan);
    for inst in plan["instances"].as_array().unwrap() {
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
    let plan = plan_json(&[
        "plan",
        "--json",
        "--show-prompts",
        "--set",
        "model=huge",
        "--set",
        "rounds=7",
        FANOUT,
    ]);
    assert_eq!(plan["params"]["model"], "huge");
    assert_eq!(plan["params"]["rounds"], 7);
    let docs = plan["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "docs[docs/a.md]")
        .unwrap();
    assert_eq!(docs["prompt"], "Review docs/a.md (7 rounds).");
    let verdict = plan["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "review/verdict")
        .unwrap();
    assert_eq!(
        verdict["prompt"],
        "Verdict on huge: <output of review/read>"
    );
}

#[test]
fn plan_json_has_no_absolute_paths() {
    let out = run(&["plan", "--json", "--show-prompts", FANOUT]);
    let root = crate::support::root();
    assert!(!stdout(&out).contains(root.to_str().unwrap()));
}

#[test]
fn dot_output_is_graphviz() {
    let out = run(&["plan", "--dot", "examples/hello/workflow.toml"]);
    assert!(out.status.success());
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph "), "{dot}");
    assert_eq!(
        dot.matches(" -> ").count(),
        2,
        "summary needs both greet instances: {dot}"
    );
}

#[test]
fn show_prompts_prints_rendered_prompts() {
    let out = run(&["plan", "--show-prompts", FANOUT]);
    let text = stdout(&out);
    assert!(text.contains("| Review docs/b.md (2 rounds)."), "{text}");
    assert!(
        text.contains("the plan said <json of plan.summary>"),
        "{text}"
    );
}

#[test]
fn prompt_libraries_extend_import_and_include() {
    let out = run(&["plan", "--show-prompts", "examples/library/workflow.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // `extends "base.md"`: the base layout's heading around the child's block.
    assert!(text.contains("| ## Task"), "{text}");
    // `import "macros.md"`: the checklist macro rendered the outline's sections.
    assert!(text.contains("| - [ ] overview"), "{text}");
    // `include "partials/house-rules.md"`.
    assert!(
        text.contains("| - Every code example must run as written."),
        "{text}"
    );
    // The sub-workflow's nodes are namespaced under the node that uses it.
    assert!(text.contains("review/"), "{text}");
}
