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

#[test]
fn invalid_utf8_in_a_workflow_file_gets_a_line_and_column() {
    let mut text = flow("[nodes.a]\nprompt = \"x\"\n").into_bytes();
    // `# café` in Latin-1 on line 2 of the file.
    let at = text.iter().position(|&b| b == b'\n').unwrap() + 1;
    text.splice(at..at, b"# caf\xE9\n".iter().copied());
    Test::new()
        .file("flow.toml", text)
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("conductor::io")
        .stderr_has("flow.toml is not UTF-8 text")
        .stderr_has("╭─[flow.toml:2:6]")
        .stderr_has("byte 0xE9 is not UTF-8")
        .stderr_has("save the file as UTF-8")
        .run();
}

#[test]
fn invalid_utf8_in_a_template_gets_a_line_and_column() {
    Test::new()
        .workflow(flow("[nodes.a]\nprompt = { template = \"p.md\" }\n"))
        .file("p.md", b"line one\nna\xEFve\n".as_slice())
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("not UTF-8: byte 0xEF at line 2, column 3")
        .run();
}

#[test]
fn env_names_no_process_can_carry_are_diagnosed() {
    Test::new()
        .workflow(flow(
            "[agents.other]\nkind = \"command\"\ncommand = [\"cat\"]\nenv = { \"\" = \"x\" }\napi_key_env = \"KEY=1\"\n\n\
             [nodes.a]\nprompt = \"x\"\nenv = { \"A=B\" = \"x\", \"N\\u0000UL\" = \"y\", OK = \"with\\u0000nul\" }\n",
        ))
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("`A=B` cannot be an environment variable name: it holds `=`")
        .stderr_has("`N\\0UL` cannot be an environment variable name: it holds a NUL character")
        .stderr_has("an environment variable name cannot be empty")
        .stderr_has("`KEY=1` cannot be an environment variable name")
        .stderr_has("the value of `OK` holds a NUL character")
        .stderr_has("no process can carry this name")
        .stderr_has("╭─[flow.toml:20:9]")
        .stderr_has("flow.toml: 5 errors")
        .run();
}

#[test]
fn an_out_of_range_integer_names_the_real_bound() {
    Test::new()
        .workflow(flow(
            "[nodes.a]\nprompt = \"x\"\nmax_parallel = 5000000000\nstop = { max_iterations = 99999999999999999999 }\n\
             for_each = [1, 99999999999999999999]\n",
        ))
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("`max_parallel` must be a whole number from 1 to 4294967295, not 5000000000")
        .stderr_has(
            "`max_iterations` must be a whole number from 1 to 4294967295, not 99999999999999999999",
        )
        .stderr_has("99999999999999999999 does not fit in a 64-bit integer")
        .stderr_lacks("remove the quotes")
        .stderr_lacks("not a string")
        .run();
    Test::new()
        .file(
            "flow.kdl",
            "version 1\nname \"t\"\nagent \"echo\" kind=\"command\" {\n    command \"cat\"\n}\n\
             node \"a\" agent=\"echo\" {\n    prompt \"x\"\n    stop max-iterations=99999999999999999999\n}\n",
        )
        .args(["validate", "flow.kdl"])
        .status(INVALID)
        .stderr_has(
            "`max-iterations` must be a whole number from 1 to 4294967295, not 99999999999999999999",
        )
        .run();
    Test::new()
        .workflow(flow("[nodes.a]\nprompt = \"{{ params.n }}\"\n").replace(
            "[defaults]",
            "[params]\nn = { type = \"int\", default = 1 }\n\n[defaults]",
        ))
        .args(["validate", "flow.toml", "--set", "n=99999999999999999999"])
        .status(INVALID)
        .stderr_has("99999999999999999999 does not fit in param `n`: an int goes from")
        .stderr_lacks("gave a string")
        .run();
}

#[test]
fn a_diagnostic_never_prints_a_huge_source_line_whole() {
    let long = "x".repeat(100_000);
    let ran = Test::new()
        .workflow(flow(&format!(
            "[nodes.a]\nprompt = \"x\"\nstop = {{ promise = \"{long}\", max_iterations = 0, output_matches = \"{long}(\" }}\n"
        )))
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("`max_iterations` must be a whole number of at least 1, not 0")
        .stderr_has("conductor::bad_regex")
        .run();
    // The column is that of the whole line; the line is cut around it.
    let line = format!("stop = {{ promise = \"{long}\", max_iterations = 0");
    let column = line.find(", max_iterations = 0").unwrap() + ", max_iterations = ".len() + 1;
    assert!(
        ran.stderr.contains(&format!("╭─[flow.toml:14:{column}]")),
        "{}",
        &ran.stderr[..ran.stderr.len().min(3000)]
    );
    assert!(
        ran.stderr.contains("…"),
        "{}",
        &ran.stderr[..3000.min(ran.stderr.len())]
    );
    assert!(
        ran.stderr.len() < 6000,
        "{} bytes of stderr:\n{}",
        ran.stderr.len(),
        &ran.stderr[..3000]
    );
}

#[test]
fn an_invalid_json_schema_is_caught_by_validate_with_its_location() {
    let node = "[nodes.a]\nprompt = \"x\"\noutput = { format = \"json\", schema = \"s.json\" }\n";
    Test::new()
        .workflow(flow(node))
        .file(
            "s.json",
            "{\n  \"type\": \"object\",\n  \"properties\": {\n    \"tasks\": { \"type\": \"strnig\" }\n  }\n}\n",
        )
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("output schema `s.json` is not a valid JSON Schema at /properties/tasks/type")
        .stderr_has("╭─[s.json:4:24]")
        .stderr_has("not valid here")
        .stderr_has("╭─[flow.toml:14:38]")
        .run();
    Test::new()
        .workflow(flow(node))
        .file("s.json", "{\n  \"type\": \"object\",\n}\n")
        .args(["validate", "flow.toml"])
        .status(INVALID)
        .stderr_has("output schema `s.json` is not JSON")
        .stderr_has("╭─[s.json:3:1]")
        .stderr_has("trailing comma")
        .run();
    Test::new()
        .workflow(flow(node))
        .file("s.json", "{ \"type\": \"object\" }")
        .args(["validate", "flow.toml"])
        .run();
}

#[test]
fn a_duration_written_without_its_unit_or_quotes_is_told_how_to_write_it() {
    let toml = "version = 1\nname = \"t\"\n[agents.a]\nkind = \"command\"\ncommand = [\"cat\"]\n\
                [nodes.n]\nagent = \"a\"\nprompt = \"p\"\nstop = { timeout = 30 }\n";
    Test::new()
        .workflow(toml)
        .args(["validate", "flow.toml"])
        .status(2)
        .stderr_has("`timeout` must be a duration, not a number")
        .stderr_has("such as \"30s\"")
        .run();
    let kdl = "version 1\nname \"t\"\nagent \"a\" kind=\"command\" {\n    command \"cat\"\n}\n\
               node \"n\" agent=\"a\" {\n    prompt \"p\"\n    stop timeout=30m\n}\n";
    Test::new()
        .file("flow.kdl", kdl)
        .args(["validate", "flow.kdl"])
        .status(2)
        .stderr_has("quote a value with a unit: timeout=\"30m\"")
        .run();
    Test::new()
        .workflow(toml.replace("timeout = 30", "timeout = \"30s\""))
        .args(["apply", "flow.toml", "--grace=bogus"])
        .status(2)
        .stderr_has("`bogus` is not a duration: write it with its unit")
        .stderr_lacks("friendly")
        .run();
}

#[test]
fn only_of_an_unknown_instance_suggests_the_nearest_instance() {
    Test::new()
        .workflow(flow(
            "[nodes.greet]\nfor_each = [\"world\", \"conductor\"]\nprompt = \"p\"\n",
        ))
        .args(["apply", "flow.toml", "--only", "greet[wrld]"])
        .status(INVALID)
        .stderr_has("did you mean `greet[world]`?")
        .run();
}
