//! Owns API-key hygiene (docs/run-store.md): which environment variables are
//! secrets, giving each agent only its own key, and redacting every key's
//! value from whatever conductor writes (the bus, run-info.yaml, prompt.md,
//! its own logs).

/// The vendor variables that hold API keys. Every `api_key_env` of the
/// workflow's agents is a secret too.
pub(crate) const VENDOR_KEYS: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "XAI_API_KEY",
    "PERPLEXITY_API_KEY",
    "OPENROUTER_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "DEEPSEEK_API_KEY",
];

/// Variables removed from every agent's environment: CLAUDECODE makes the
/// claude CLI refuse to start inside another claude session.
const REMOVED: &[&str] = &["CLAUDECODE"];

/// The environment an agent starts with: `base` without any secret except
/// the agent's own (`own`, the variables its kind or `api_key_env` names),
/// and without the variables that break nested agents.
pub(crate) fn agent_environment(
    base: impl IntoIterator<Item = (String, String)>,
    secrets: &[&str],
    own: &[&str],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = base
        .into_iter()
        .filter(|(k, _)| !REMOVED.contains(&k.as_str()))
        .filter(|(k, _)| !secrets.contains(&k.as_str()) || own.contains(&k.as_str()))
        .collect();
    env.sort();
    env
}

/// Replaces the values of secrets in text conductor writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    /// Longest first, so a key that contains another is replaced whole.
    values: Vec<(String, String)>,
}

/// Values this short are not redacted: replacing every "1" or "test" in a
/// log would destroy it and protect nothing.
const MIN_SECRET_LEN: usize = 8;

impl Redactor {
    /// Collects the values of the secret variables present in `env`.
    pub(crate) fn new<'a>(
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
        secrets: &[&str],
    ) -> Self {
        let mut values: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, v)| secrets.contains(k) && v.len() >= MIN_SECRET_LEN)
            .map(|(k, v)| (v.to_string(), format!("[redacted {k}]")))
            .collect();
        // Equal values end up side by side, for the dedup below.
        values.sort_by_key(|(v, _)| (std::cmp::Reverse(v.len()), v.clone()));
        values.dedup_by(|a, b| a.0 == b.0);
        Self { values }
    }

    /// `text` with every secret value replaced by `[redacted NAME]`.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if !self.values.iter().any(|(v, _)| text.contains(v.as_str())) {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for (value, mark) in &self.values {
            out = out.replace(value.as_str(), mark);
        }
        std::borrow::Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("PATH", "/usr/bin"),
            ("ANTHROPIC_API_KEY", "sk-ant-secret-1234"),
            ("OPENAI_API_KEY", "sk-openai-secret-5678"),
            ("LOCAL_LLM_KEY", "local-secret-abcdef"),
            ("CLAUDECODE", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn each_agent_gets_only_its_own_key() {
        let mut secrets = VENDOR_KEYS.to_vec();
        secrets.push("LOCAL_LLM_KEY");
        let claude = agent_environment(env(), &secrets, &["ANTHROPIC_API_KEY"]);
        let names: Vec<&str> = claude.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["ANTHROPIC_API_KEY", "PATH"]);
        let local = agent_environment(env(), &secrets, &["LOCAL_LLM_KEY"]);
        let names: Vec<&str> = local.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["LOCAL_LLM_KEY", "PATH"]);
    }

    #[test]
    fn secrets_are_redacted_wherever_they_appear() {
        let pairs = env();
        let r = Redactor::new(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            VENDOR_KEYS,
        );
        let text =
            "curl -H 'x-api-key: sk-ant-secret-1234' and sk-openai-secret-5678 on PATH /usr/bin";
        assert_eq!(
            r.redact(text),
            "curl -H 'x-api-key: [redacted ANTHROPIC_API_KEY]' and [redacted OPENAI_API_KEY] on PATH /usr/bin"
        );
        assert!(matches!(
            r.redact("nothing secret"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
