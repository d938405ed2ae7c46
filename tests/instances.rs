//! Instances are distinct and bounded: no two instances of one apply share
//! a task folder (duplicate items are refused, task ids do not collide),
//! and expanding a workflow into instances and rendering its templates
//! stay within documented caps, so that `validate`, `plan` and `watch`
//! end, with a diagnostic when a cap is passed.

use crate::apply_support::st;
use crate::test_builder::Test;

/// Exit code of `validate` for an invalid workflow.
const INVALID: i32 = 2;

/// A workflow with one agent `echo` (it prints the prompt back) and these
/// nodes, written after it.
fn flow(nodes: &str) -> String {
    format!(
        "version = 1\nname = \"t\"\n\n[agents.echo]\nkind = \"command\"\ncommand = [\"cat\"]\n\n\
         [defaults]\nagent = \"echo\"\nstop = {{ exit_zero = true, max_iterations = 1 }}\n\n{nodes}"
    )
}

#[test]
fn duplicate_items_are_a_validate_error_at_the_duplicate() {
    Test::new()
        .workflow(flow(
            "[nodes.a]\nfor_each = [\"a\", \"b\", \"a\"]\nprompt = \"{{ item }}\"\n",
        ))
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("conductor::duplicate_item")
        .stderr_has("`for_each` of node `a` lists the item \"a\" twice")
        .stderr_has("╭─[flow.toml:13:23]")
        .stderr_has("again here")
        .stderr_has("first here")
        .stderr_has("help: remove one")
        .run();
}

#[test]
fn repeated_matrix_values_are_a_validate_error() {
    Test::new()
        .workflow(flow(
            "[nodes.a]\nmatrix = { m = [\"x\", \"y\", \"x\"], n = [1, 2] }\nprompt = \"{{ matrix.m }}\"\n",
        ))
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("conductor::duplicate_item")
        .stderr_has("matrix axis `m` of node `a` lists the value \"x\" twice")
        .stderr_has("╭─[flow.toml:13:27]")
        .run();
}

#[test]
fn items_that_give_one_key_are_a_validate_error() {
    Test::new()
        .workflow(flow(
            "[nodes.a]\nfor_each = [1, \"1\"]\nprompt = \"{{ item }}\"\n",
        ))
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("has the items 1 and \"1\", which give one instance key `1`")
        .run();
    // Items rendered from params are checked as rendered.
    Test::new()
        .workflow(
            flow("[nodes.a]\nfor_each = [\"{{ params.x }}\", \"{{ params.y }}\"]\nprompt = \"{{ item }}\"\n")
                .replace(
                    "[defaults]",
                    "[params]\nx = { type = \"string\", default = \"same\" }\ny = { type = \"string\", default = \"same\" }\n\n[defaults]",
                ),
        )
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("lists the item \"same\" twice")
        .run();
}

#[test]
fn duplicate_run_time_items_fail_the_fan_out_and_say_which() {
    let ran = Test::new()
        .workflow(flow(
            "[agents.say]\nkind = \"command\"\ncommand = [\"conductor\", \"__fake-agent\", \"--say\", \"x\\ny\\nx\"]\n\n\
             [nodes.list]\nagent = \"say\"\nprompt = \"list\"\n\n\
             [nodes.each]\nfor_each = { from = \"list\", lines = true }\nprompt = \"{{ item }}\"\n",
        ))
        .apply()
        .status(1)
        .run();
    assert_eq!(ran.state("each[*]"), st("failed", "fan_out_source", 0));
    let error = ran.instance("each[*]")["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("items 1 and 3 give one instance, `each[x]`"),
        "{error}"
    );
}

#[test]
fn nested_template_loops_run_out_of_fuel_once_not_per_instance() {
    let loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
    let items: Vec<String> = (0..50).map(|i| format!("\"i{i}\"")).collect();
    let workflow = flow(&format!(
        "[nodes.a]\nfor_each = [{}]\nprompt = \"{loops}\"\n",
        items.join(", ")
    ));
    let started = std::time::Instant::now();
    let ran = Test::new()
        .workflow(&workflow)
        .args(["validate", "flow.toml"])
        .timeout(std::time::Duration::from_mins(1))
        .status(INVALID)
        .stderr_has("conductor::template_render")
        .stderr_has("rendering ran out of fuel")
        .stderr_has("flow.toml: 1 error")
        .run();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    ran.then()
        .args(["plan", "flow.toml"])
        .timeout(std::time::Duration::from_mins(1))
        .status(INVALID)
        .stderr_has("rendering ran out of fuel")
        .run();
    // The same in a templated string other than the prompt.
    Test::new()
        .workflow(flow(&format!(
            "[nodes.a]\nprompt = \"x\"\nenv = {{ X = \"{loops}\" }}\n"
        )))
        .args(["validate", "flow.toml"])
        .timeout(std::time::Duration::from_mins(1))
        .status(INVALID)
        .stderr_has("rendering ran out of fuel")
        .run();
}

#[test]
fn a_matrix_too_large_to_expand_is_refused_at_once() {
    let values = "[\"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\", \"9\", \"10\"]";
    let axes: Vec<String> = "abcdefghij"
        .chars()
        .map(|c| format!("{c} = {values}"))
        .collect();
    Test::new()
        .workflow(flow(&format!(
            "[nodes.a]\nmatrix = {{ {} }}\nprompt = \"x\"\n",
            axes.join(", ")
        )))
        .args(["validate", "flow.toml"])
        .timeout(std::time::Duration::from_mins(1))
        .status(INVALID)
        .stderr_has("conductor::too_large")
        .stderr_has("node `a` expands to 10000000000 instances (1 item(s) × 10000000000 matrix")
        .stderr_has("a plan may have at most 100000")
        .run();
}

#[test]
fn needs_links_are_capped() {
    let items: Vec<String> = (0..1500).map(|i| format!("\"i{i}\"")).collect();
    let items = items.join(", ");
    Test::new()
        .workflow(flow(&format!(
            "[nodes.a]\nfor_each = [{items}]\nprompt = \"x\"\n\n\
             [nodes.b]\nneeds = [\"a\"]\nfor_each = [{items}]\nprompt = \"x\"\n"
        )))
        .args(["validate", "flow.toml"])
        .timeout(std::time::Duration::from_mins(1))
        .status(INVALID)
        .stderr_has("node `b` adds 2250000 `needs` links between instances")
        .stderr_has("at most 2000000")
        .run();
}

#[test]
fn a_mirror_of_many_instances_plans_in_linear_time() {
    // Quadratic, this took minutes; linear, seconds.
    let items: Vec<String> = (0..50_000).map(|i| format!("\"i{i}\"")).collect();
    let ran = Test::new()
        .workflow(flow(&format!(
            "[nodes.a]\nfor_each = [{}]\nprompt = \"x\"\n\n\
             [nodes.b]\nfor_each = {{ each_of = \"a\" }}\nprompt = \"{{{{ needs.a.item }}}}\"\n",
            items.join(", ")
        )))
        .args(["validate", "flow.toml"])
        .timeout(std::time::Duration::from_secs(40))
        .run();
    assert!(
        ran.stderr.contains("valid (2 nodes, 100000 instances)"),
        "{}",
        ran.stderr
    );
}

#[test]
fn chains_of_sub_workflows_are_capped() {
    // Each file uses the next twice: 2^24 nodes if nothing stopped it.
    // (The cap counts to 20,000, which takes a while in a debug build.)
    let mut test = Test::new().workflow(
        "version = 1\nname = \"top\"\noutput = \"x\"\n[nodes.x]\nworkflow = \"w1.toml\"\n[nodes.y]\nworkflow = \"w1.toml\"\n",
    );
    for level in 1..24 {
        test = test.file(
            format!("w{level}.toml"),
            format!(
                "version = 1\nname = \"w{level}\"\noutput = \"x\"\n[nodes.x]\nworkflow = \"w{next}.toml\"\n[nodes.y]\nworkflow = \"w{next}.toml\"\n",
                next = level + 1
            ),
        );
    }
    test.file(
        "w24.toml",
        "version = 1\nname = \"w24\"\n[agents.echo]\nkind = \"command\"\ncommand = [\"cat\"]\n[nodes.x]\nagent = \"echo\"\nprompt = \"x\"\n",
    )
    .args(["validate", "flow.toml"])
    .timeout(std::time::Duration::from_mins(2))
    .status(INVALID)
    .stderr_has("conductor::too_large")
    .stderr_has("more than 20000 nodes, counting each use of a sub-")
    .stderr_lacks("panicked")
    .run();
    // A chain of distinct files, one inside the next.
    let mut test =
        Test::new().workflow("version = 1\nname = \"top\"\n[nodes.x]\nworkflow = \"c1.toml\"\n");
    for level in 1..40 {
        test = test.file(
            format!("c{level}.toml"),
            format!(
                "version = 1\nname = \"c{level}\"\n[nodes.x]\nworkflow = \"c{}.toml\"\n",
                level + 1
            ),
        );
    }
    test.file(
        "c40.toml",
        "version = 1\nname = \"c40\"\n[agents.echo]\nkind = \"command\"\ncommand = [\"cat\"]\n[nodes.x]\nagent = \"echo\"\nprompt = \"x\"\n",
    )
    .args(["validate", "flow.toml"])
    .status(INVALID)
    .stderr_has("sub-workflows nest more than 32 deep here")
    .run();
}

#[test]
fn json_items_get_readable_keys_everywhere_a_user_looks() {
    // Static items named by `title`/`name`; two that read alike stay
    // apart; a run-time fan-out of JSON objects is named the same way.
    let ran = Test::new()
        .workflow(flow(
            "[nodes.work]\nfor_each = [{ title = \"Word Count\" }, { name = \"lint\", n = 1 }, { name = \"lint\", n = 2 }]\n\
             prompt = \"{{ item | tojson }}\"\n\n\
             [nodes.plan]\nprompt = '{\"tasks\": [{\"id\": \"Fix bug #12\"}, {\"id\": 40}]}'\noutput = { format = \"json\" }\n\n\
             [nodes.fix]\nfor_each = { from = \"plan\", path = \"json.tasks\" }\nprompt = \"{{ item.id }}\"\n",
        ))
        .apply()
        .stderr_has("work[word-count]: done")
        .stderr_has("fix[fix-bug-12]: done")
        .stderr_has("fix[40]: done")
        .run();
    let keys = ran.keys();
    assert!(keys.contains(&"work[word-count]".to_string()), "{keys:?}");
    let lint: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("work[lint~"))
        .collect();
    assert_eq!(lint.len(), 2, "{keys:?}");
    assert_eq!(ran.state("fix[fix-bug-12]"), st("done", "exit_zero", 1));
    // `logs` and `status` take the readable key.
    ran.then()
        .args(["logs", "work[word-count]"])
        .with_root()
        .stdout_has("Word Count")
        .run();
    ran.then()
        .args(["status"])
        .with_root()
        .stdout_has("fix[fix-bug-12]")
        .run();
}

#[test]
fn a_run_time_fan_out_names_its_instances_with_its_key_template() {
    let nodes = "[nodes.plan]\nprompt = '{\"tasks\": [{\"title\": \"Fix the bug\"}, {\"title\": \"Add docs\"}, {\"title\": \"Add docs\", \"n\": 2}]}'\noutput = { format = \"json\" }\n\n\
                 [nodes.fix]\nfor_each = { from = \"plan\", path = \"json.tasks\", key = \"{{ item.title }}\" }\nprompt = \"{{ item.title }}\"\n";
    let ran = Test::new()
        .workflow(flow(nodes))
        .apply()
        .stderr_has("fix[fix-the-bug]: done")
        .run();
    let keys = ran.keys();
    assert!(keys.contains(&"fix[fix-the-bug]".to_string()), "{keys:?}");
    // Two items the template reads alike stay two instances.
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("fix[add-docs~"))
            .count(),
        2,
        "{keys:?}"
    );
    // A template that does not parse is a validate error.
    Test::new()
        .workflow(flow(
            &nodes.replace("{{ item.title }}\" }", "{{ item.title \" }"),
        ))
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("invalid `key` template")
        .run();
}
