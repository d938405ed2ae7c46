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
