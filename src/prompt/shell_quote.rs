//! Owns the `shell_quote` filter: a value made into one shell word that
//! the shell reads back as exactly that value, so that an item, a param or
//! an answer pasted into a `stop.command` or `[success]` command is data,
//! never code (docs/security.md, "Values are data, never code").

use minijinja::Value;
use minijinja::value::ValueKind;

/// `value` as POSIX shell words: a string in single quotes (a `'` in it
/// written as `'\''`), a list as one quoted word per element, anything
/// else as its text, quoted. Undefined and none are the empty word `''`.
pub(crate) fn shell_quote(value: &Value) -> String {
    match value.kind() {
        ValueKind::Seq | ValueKind::Iterable => value.try_iter().map_or_else(
            |_| quote(&text(value)),
            |items| {
                items
                    .map(|v| quote(&text(&v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        ),
        _ => quote(&text(value)),
    }
}

fn text(value: &Value) -> String {
    if value.is_undefined() || value.is_none() {
        String::new()
    } else {
        value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string)
    }
}

/// `text` as one POSIX shell word.
pub(crate) fn shell_word(text: &str) -> String {
    quote(text)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh` makes of `words`, one line per argument.
    fn shell_reads(words: &str) -> String {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s\\n' {words}")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_shell_reads_back_exactly_the_value() {
        for hostile in [
            "docs/$(touch X).md",
            "a'b",
            "'; rm -rf / #",
            "`id`",
            "$HOME *",
            "new\nline",
            "",
            "back\\slash \"quoted\"",
        ] {
            let words = shell_quote(&Value::from(hostile));
            assert_eq!(shell_reads(&words), format!("{hostile}\n"), "{words}");
        }
    }

    #[test]
    fn a_list_is_one_word_per_element_and_numbers_are_their_text() {
        let list = Value::from(vec!["a b", "$(c)"]);
        assert_eq!(shell_reads(&shell_quote(&list)), "a b\n$(c)\n");
        assert_eq!(shell_quote(&Value::from(42)), "'42'");
    }
}
