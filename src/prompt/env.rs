//! Owns `env` as templates see it: conductor's environment without the
//! variables that hold secrets (docs/security.md, "Secrets"), so that no
//! template, filter or loop can put a key into a prompt, a command or a
//! file; and noting each variable a render reads, so that a fingerprint
//! covers it (docs/watch.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object};

/// The environment as a template value.
#[derive(Debug)]
struct Env {
    vars: BTreeMap<String, String>,
}

impl Object for Env {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        super::reads::env_read(name);
        self.vars.get(name).map(|v| Value::from(v.as_str()))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        super::reads::env_read(super::reads::ALL_ENV);
        Enumerator::Values(self.vars.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

/// `env` for templates: `vars` without any variable named in `secrets`.
pub(crate) fn env_value<S: AsRef<str>>(
    vars: impl IntoIterator<Item = (String, String)>,
    secrets: &[S],
) -> Value {
    let vars = vars
        .into_iter()
        .filter(|(k, _)| !secrets.iter().any(|s| s.as_ref() == k))
        .collect();
    Value::from_object(Env { vars })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, env: Value) -> (String, super::super::Reads) {
        let jinja = minijinja::Environment::new();
        super::super::recording(false, || {
            jinja
                .render_str(template, minijinja::context! { env => env })
                .unwrap_or_else(|e| format!("error: {e}"))
        })
    }

    fn env() -> Value {
        let vars = [("TARGET", "prod"), ("ANTHROPIC_API_KEY", "sk-ant-secret")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        env_value(vars, &["ANTHROPIC_API_KEY"])
    }

    #[test]
    fn a_secret_is_not_there_however_it_is_asked_for() {
        for template in [
            "{{ env.ANTHROPIC_API_KEY }}",
            "{{ env['ANTHROPIC' ~ '_API_KEY'] }}",
            "{{ env | list }}",
            "{{ env | items | list }}",
            "{% for k in env %}{{ env[k] | reverse }}{% endfor %}",
            "{{ env | tojson }}",
        ] {
            let (out, _) = render(template, env());
            assert!(!out.contains("sk-ant"), "{template}: {out}");
            assert!(!out.contains("terces"), "{template}: {out}");
        }
    }

    #[test]
    fn each_variable_read_is_noted_and_a_listing_notes_all() {
        let (out, reads) = render("{{ env.TARGET }}", env());
        assert_eq!(out, "prod");
        assert_eq!(reads.env.iter().collect::<Vec<_>>(), ["TARGET"]);
        let (_, reads) = render("{{ env.MISSING is defined }}", env());
        assert!(reads.env.contains("MISSING"));
        let (_, reads) = render("{{ env | list }}", env());
        assert!(reads.env.contains(super::super::ALL_ENV));
    }
}
