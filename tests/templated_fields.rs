//! Every templated field is rendered as docs/workflow-format.md says, for
//! each instance: `item` (and `matrix`) reach `workdir`, `env`,
//! `stop.promise` and `stop.command` of static and run-time fan-out alike,
//! and prompt `vars` and an agent's `model` are template strings too.

use crate::apply_support::st;
use crate::test_builder::Test;

/// A workflow whose agent `show` prints its folder, `$SUITE` and the prompt,
/// then `done <item>` (a promise), and whose node `src` answers `wa` and
/// `wb` on two lines; then `nodes`.
fn flow(nodes: &str) -> String {
    format!(
        r#"version = 1
name = "t"

[params]
p = {{ type = "string", default = "X" }}

[agents.show]
kind = "command"
command = ["sh", "-c", "cat >/dev/null; echo \"in $(basename \"$PWD\") SUITE=$SUITE\"; echo \"done $SUITE\""]

[agents.say]
kind = "command"
command = ["conductor", "__fake-agent", "--say", "wa\nwb"]

[agents.cli]
kind = "claude"
command = ["sh", "-c", "cat; echo \"$@\"", "sh"]
args = ["argv:"]
model = "m-{{{{ item }}}}-{{{{ params.p }}}}"

[defaults]
agent = "show"
stop = {{ max_iterations = 1 }}

[nodes.src]
agent = "say"
prompt = "list"
stop = {{ exit_zero = true }}
{nodes}"#
    )
}

/// The fields every fanned-out node here templates.
const FIELDS: &str = r#"workdir = "{{ item }}"
env = { SUITE = "{{ item }}" }
stop = { promise = "done {{ item }}", command = "test \"$(basename \"$PWD\")\" = {{ item }}", all = true }
prompt = { template = "p.md", vars = { who = "{{ item }}-{{ params.p }}", list = ["{{ item }}"] } }
"#;

#[test]
fn static_fan_out_renders_item_in_every_field() {
    let ran = Test::new()
        .workflow(flow(&format!(
            "\n[nodes.a]\nfor_each = [\"wa\", \"wb\"]\n{FIELDS}"
        )))
        .file("p.md", "vars: {{ vars.who }} {{ vars.list | join(',') }}\n")
        .dir("wa")
        .dir("wb")
        .args(["plan", "flow.toml", "--json"])
        .run();
    let plan = ran.json();
    let a = plan["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "a[wb]")
        .unwrap();
    assert_eq!(a["workdir"], "wb");
    assert_eq!(a["env"]["SUITE"], "wb");
    assert_eq!(a["stop"]["success"]["promise"], "done wb");
    let ran = ran.then().apply().run();
    for item in ["wa", "wb"] {
        assert_eq!(
            ran.state(&format!("a[{item}]")),
            st("done", "all", 1),
            "{}",
            ran.explain()
        );
        assert!(
            ran.output(&format!("a[{item}]"))
                .contains(&format!("in {item} SUITE={item}"))
        );
    }
    ran.then()
        .args(["plan", "flow.toml", "--show-prompts"])
        .stdout_has("vars: wa-X wa")
        .stdout_has("vars: wb-X wb")
        .run();
}

#[test]
fn run_time_fan_out_renders_each_item_in_every_field() {
    let ran = Test::new()
        .workflow(flow(&format!(
            "\n[nodes.a]\nfor_each = {{ from = \"src\", lines = true }}\n{FIELDS}"
        )))
        .file("p.md", "vars: {{ vars.who }} {{ vars.list | join(',') }}\n")
        .dir("wa")
        .dir("wb")
        .apply()
        .run();
    for item in ["wa", "wb"] {
        let key = format!("a[{item}]");
        assert_eq!(ran.state(&key), st("done", "all", 1), "{}", ran.explain());
        assert!(
            ran.output(&key)
                .contains(&format!("in {item} SUITE={item}")),
            "{}",
            ran.output(&key)
        );
        let prompt = std::fs::read_to_string(ran.runs(&key)[0].join("prompt.md")).unwrap();
        assert!(
            prompt.contains(&format!("vars: {item}-X {item}")),
            "{prompt}"
        );
    }
    // The plan shows what it cannot know yet as a stand-in, not `none`.
    ran.then()
        .args(["plan", "flow.toml", "--json"])
        .stdout_has(r#""SUITE": "<item>""#)
        .stdout_lacks("none")
        .stdout_lacks("None")
        .run();
}

#[test]
fn a_run_time_item_whose_workdir_is_missing_fails_the_fan_out_and_says_why() {
    let ran = Test::new()
        .workflow(flow(&format!(
            "\n[nodes.a]\nfor_each = {{ from = \"src\", lines = true }}\n{FIELDS}"
        )))
        .file("p.md", "p")
        .dir("wa")
        .apply()
        .status(1)
        .run();
    assert_eq!(ran.state("a[*]"), st("failed", "render_error", 0));
    let error = ran.instance("a[*]")["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("`a[wb]`") && error.contains("does not exist"),
        "{error}"
    );
}

#[test]
fn an_agents_model_is_rendered_for_each_instance() {
    let node = "\n[nodes.a]\nagent = \"cli\"\nfor_each = [\"wa\"]\nprompt = \"p\"\nstop = { exit_zero = true }\n\
                \n[nodes.b]\nagent = \"cli\"\nfor_each = { from = \"src\", lines = true }\nprompt = \"p\"\nstop = { exit_zero = true }\n";
    let ran = Test::new()
        .workflow(flow(node))
        .args(["plan", "flow.toml", "--json", "--set", "p=Y"])
        .run();
    let a = &ran.json()["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "a[wa]")
        .unwrap()["agent"];
    assert_eq!(a["model"], "m-wa-Y");
    let ran = ran.then().apply().args(["--set", "p=Y"]).run();
    assert!(
        ran.output("a[wa]").contains("argv: --model m-wa-Y"),
        "{}",
        ran.output("a[wa]")
    );
    assert!(
        ran.output("b[wb]").contains("argv: --model m-wb-Y"),
        "{}",
        ran.output("b[wb]")
    );
}

#[test]
fn a_node_without_fan_out_that_reads_item_is_told_so() {
    Test::new()
        .workflow(flow(
            "\n[nodes.a]\nprompt = \"p\"\nenv = { X = \"{{ item }}\" }\n",
        ))
        .args(["validate", "flow.toml"])
        .status(2)
        .stderr_has("cannot render `{{ item }}` for node `a`")
        .run();
}
