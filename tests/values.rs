//! Values are data, never code (docs/security.md): an item, a param or an
//! answer reaches a shell command as one word, through `shell_quote` or
//! `$CONDUCTOR_ITEM`, and `validate` warns of one pasted in as it is.

use crate::apply_support::st;
use crate::test_builder::Test;

fn glob_flow(check: &str) -> String {
    format!(
        r#"version = 1
name = "t"
[agents.a]
kind = "command"
command = ["conductor", "__fake-agent", "--say", "ok"]
[nodes.n]
agent = "a"
for_each = {{ glob = "docs/*.md" }}
prompt = "read {{{{ item }}}}"
stop = {{ command = '{check}', max_iterations = 1 }}
"#
    )
}

#[test]
fn a_hostile_file_name_reaches_the_command_as_one_word_and_runs_nothing() {
    for check in [
        "test -f {{ item | shell_quote }}",
        r#"test -f "$CONDUCTOR_ITEM""#,
    ] {
        let ran = Test::new()
            .workflow(glob_flow(check))
            .file("docs/$(touch PWNED).md", "x")
            .file("docs/a'b; touch PWNED2.md", "x")
            .apply()
            .stderr_lacks("unquoted_in_shell")
            .run();
        for key in ran.keys() {
            assert_eq!(ran.state(&key), st("done", "command", 1), "{check}: {key}");
        }
        assert_eq!(ran.keys().len(), 2, "{check}");
        for pwned in ["PWNED", "PWNED2.md", "docs/PWNED"] {
            assert!(!ran.path().join(pwned).exists(), "{check} ran {pwned}");
        }
    }
}

#[test]
fn validate_warns_of_a_value_pasted_into_a_shell_command_as_it_is() {
    let flow = glob_flow("test -f {{ item }}").replace(
        "[nodes.n]",
        "[params]\nx = { type = \"string\", default = \"y\" }\n[success]\ncommands = [\"echo {{ params.x }}\", \"echo {{ params.x | shell_quote }}\"]\n[nodes.n]",
    );
    let ran = Test::new()
        .workflow(flow)
        .dir("docs")
        .args(["validate", "flow.toml"])
        .stderr_has("conductor::unquoted_in_shell")
        .stderr_has("`{{ item }}` is pasted into a shell command as it is")
        .stderr_has("{{ item | shell_quote }}")
        .stderr_has("\"$CONDUCTOR_ITEM\"")
        .stderr_has("`{{ params.x }}` is pasted into a shell command as it is")
        .run();
    // A warning each, not an error, and none for the quoted command.
    assert_eq!(
        ran.stderr.matches("conductor::unquoted_in_shell").count(),
        2,
        "{}",
        ran.stderr
    );
}
