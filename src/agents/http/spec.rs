//! Owns an HTTP agent as resolved from its `[agents]` table: which wire
//! format it speaks, the full endpoint URL, the model, and the variable
//! that holds its key.

use super::{anthropic, openai};
use crate::model::AgentKind;

/// Which wire format an agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    OpenAi,
    Anthropic,
}

/// An HTTP agent, resolved from its `[agents]` table.
#[derive(Debug, Clone)]
pub(crate) struct HttpSpec {
    pub wire: Wire,
    /// The full endpoint URL.
    pub url: String,
    pub model: String,
    /// The variable that holds the key: `api_key_env`, else the vendor's.
    pub key_var: String,
    /// The call as run-info.yaml's `commandline` shows it.
    pub call: String,
}

/// An HTTP agent that cannot be called as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SpecError {
    #[error("kind \"{kind}\" needs a `model` (the name the API knows it by)")]
    NoModel { kind: &'static str },
    #[error("`base_url` {base:?} is not a URL: {reason}")]
    BadUrl { base: String, reason: String },
}

impl HttpSpec {
    /// The spec of an HTTP kind; `None` for process kinds.
    pub(crate) fn new(
        kind: AgentKind,
        base_url: Option<&str>,
        model: Option<&str>,
        api_key_env: Option<&str>,
    ) -> Result<Option<Self>, SpecError> {
        let (wire, default_url, default_key) = match kind {
            AgentKind::Openai => (Wire::OpenAi, openai::DEFAULT_BASE_URL, "OPENAI_API_KEY"),
            AgentKind::Anthropic => (
                Wire::Anthropic,
                anthropic::DEFAULT_BASE_URL,
                "ANTHROPIC_API_KEY",
            ),
            _ => return Ok(None),
        };
        let model = model.filter(|m| !m.is_empty()).ok_or(SpecError::NoModel {
            kind: kind.as_str(),
        })?;
        let base = base_url.unwrap_or(default_url);
        let url = match wire {
            Wire::OpenAi => openai::endpoint(base),
            Wire::Anthropic => anthropic::endpoint(base),
        };
        reqwest::Url::parse(&url).map_err(|e| SpecError::BadUrl {
            base: base.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some(Self {
            wire,
            call: format!("POST {url} (model {model})"),
            url,
            model: model.to_string(),
            key_var: api_key_env.unwrap_or(default_key).to_string(),
        }))
    }

    /// The key, as the agent's environment holds it (the workflow's `env`
    /// may set it); `None` when it is unset or blank.
    pub(crate) fn key(&self, env: &[(String, String)]) -> Option<String> {
        env.iter()
            .find(|(k, _)| *k == self.key_var)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_need_a_model_and_default_their_url_and_key() {
        let s = HttpSpec::new(AgentKind::Anthropic, None, Some("claude-x"), None)
            .unwrap()
            .unwrap();
        assert_eq!(s.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(s.key_var, "ANTHROPIC_API_KEY");
        let s = HttpSpec::new(
            AgentKind::Openai,
            Some("http://127.0.0.1:11434/v1"),
            Some("qwen"),
            Some("LOCAL_KEY"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.url, "http://127.0.0.1:11434/v1/chat/completions");
        assert_eq!(s.key_var, "LOCAL_KEY");
        let e = HttpSpec::new(AgentKind::Openai, None, None, None).unwrap_err();
        assert!(e.to_string().contains("needs a `model`"), "{e}");
        assert!(
            HttpSpec::new(AgentKind::Codex, None, None, None)
                .unwrap()
                .is_none()
        );
        let env = vec![("LOCAL_KEY".to_string(), "  k \n".to_string())];
        let s = HttpSpec::new(AgentKind::Openai, None, Some("m"), Some("LOCAL_KEY"))
            .unwrap()
            .unwrap();
        assert_eq!(s.key(&env).as_deref(), Some("k"));
        assert_eq!(s.key(&[]), None);
    }
}
