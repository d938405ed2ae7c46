//! Diagnostics that are right: what `conductor validate` says about a
//! workflow is true, points at the file, line and column of the problem,
//! and says how to fix it. A valid workflow is never rejected; an invalid
//! one is never let through to fail later.

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
fn an_include_by_computed_name_is_not_rejected() {
    let ran = Test::new()
        .workflow(flow(
            "[nodes.a]\nfor_each = [\"x\", \"y\"]\nprompt = '{% include \"parts/\" ~ item ~ \".md\" %}'\n",
        ))
        .file("parts/x.md", "part x for {{ item }}")
        .file("parts/y.md", "part y for {{ item }}")
        .args(["validate", "flow.toml"])
        .stderr_lacks("template_not_found")
        .stderr_has("flow.toml: valid (1 node, 2 instances)")
        .run();
    // The names it computes are checked once the items are known.
    ran.then()
        .args(["plan", "flow.toml", "--show-prompts"])
        .stdout_has("part x for x")
        .stdout_has("part y for y")
        .run();
}

#[test]
fn an_include_by_computed_name_that_is_missing_for_an_item_is_an_error_there() {
    Test::new()
        .workflow(flow(
            "[nodes.a]\nfor_each = [\"x\", \"gone\"]\nprompt = '{% include \"parts/\" ~ item ~ \".md\" %}'\n",
        ))
        .file("parts/x.md", "part x")
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("conductor::template_not_found")
        .stderr_has("parts/gone.md")
        .stderr_has("node `a`")
        .stderr_has("╭─[flow.toml:")
        .run();
}

#[test]
fn an_include_by_computed_name_of_a_run_time_item_waits_for_the_item() {
    Test::new()
        .workflow(flow(
            "[nodes.list]\nprompt = \"x\"\n\n[nodes.a]\nfor_each = { from = \"list\", lines = true }\n\
             prompt = '{% include \"parts/\" ~ item ~ \".md\" %}'\n",
        ))
        .file("parts/x.md", "part x")
        .args(["validate", "flow.toml"])
        .stderr_lacks("template_not_found")
        .stderr_has("flow.toml: valid")
        .run();
}

#[test]
fn an_optional_include_of_a_missing_file_is_not_rejected() {
    Test::new()
        .workflow(flow(
            "[nodes.a]\nprompt = '{% include \"local.md\" ignore missing %}done'\n",
        ))
        .args(["validate", "flow.toml"])
        .stderr_lacks("template_not_found")
        .stderr_has("flow.toml: valid")
        .run();
}

#[test]
fn a_literal_include_of_a_missing_file_is_still_an_error() {
    Test::new()
        .workflow(flow("[nodes.a]\nprompt = '{% include \"gone.md\" %}'\n"))
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("conductor::template_not_found")
        .stderr_has("template `gone.md` not found")
        .run();
}

#[test]
fn a_self_including_template_says_recursion() {
    Test::new()
        .workflow(flow("[nodes.a]\nprompt = { template = \"self.md\" }\n"))
        .file("self.md", "again:\n{% include \"self.md\" %}\n")
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("conductor::template_render")
        .stderr_has("recursion")
        .stderr_has("╭─[self.md:2:4]")
        .stderr_has("includes itself")
        .stderr_lacks("panicked")
        .run();
}
