//! Owns API-key hygiene (docs/security.md, "Secrets"): which environment
//! variables are secrets, giving each agent only its own key, and redacting
//! every key's value from whatever conductor writes: text (the bus,
//! run-info.yaml, prompt.md, answers, errors), streams (agents' output, as
//! it passes) and files agents wrote themselves (`output.md`).

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

/// The variable that names, for a process conductor starts, the variables
/// that hold secrets (comma-separated): what it posts to the bus is
/// redacted of their values.
pub(crate) const SECRET_NAMES: &str = "CONDUCTOR_SECRET_NAMES";

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

impl Redactor {
    /// The secrets of this process's own environment: the vendor keys, and
    /// the variables [`SECRET_NAMES`] names (an agent posting to the bus).
    pub(crate) fn of_this_process() -> Self {
        let listed = std::env::var(SECRET_NAMES).unwrap_or_default();
        let mut names: Vec<&str> = VENDOR_KEYS.to_vec();
        names.extend(listed.split(',').filter(|n| !n.is_empty()));
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::new(env.iter().map(|(k, v)| (k.as_str(), v.as_str())), &names)
    }

    /// Each secret value and what replaces it, longest first.
    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.values
    }
}

/// Redacts a stream of bytes as it passes (an agent's output on its way
/// to its run's files): a secret split across two reads is still found,
/// because the last bytes of a read, as many as the longest secret less
/// one, wait for the next.
#[derive(Debug)]
pub(crate) struct StreamRedactor {
    finder: aho_corasick::AhoCorasick,
    marks: Vec<Vec<u8>>,
    longest: usize,
    carry: Vec<u8>,
    /// Whether a secret was found so far.
    found: bool,
}

impl StreamRedactor {
    /// `None` when there is nothing to redact.
    pub(crate) fn new(pairs: &[(String, String)]) -> Option<Self> {
        let pairs: Vec<_> = pairs.iter().filter(|(v, _)| !v.is_empty()).collect();
        if pairs.is_empty() {
            return None;
        }
        let finder = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(pairs.iter().map(|(v, _)| v.as_bytes()))
            .ok()?;
        Some(Self {
            finder,
            marks: pairs.iter().map(|(_, m)| m.as_bytes().to_vec()).collect(),
            longest: pairs.iter().map(|(v, _)| v.len()).max().unwrap_or(0),
            carry: Vec::new(),
            found: false,
        })
    }

    /// Appends to `out` what of `chunk` (after what was held back) is
    /// settled, redacted.
    pub(crate) fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        // A match starting before `settled` is whole in `data`, and no
        // longer one can start there: what comes next cannot change it.
        let settled = data.len().saturating_sub(self.longest.saturating_sub(1));
        let end = self.emit(&data, settled, out);
        self.carry = data.get(end..).unwrap_or_default().to_vec();
    }

    /// Appends what was held back, redacted: the stream has ended.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        let data = std::mem::take(&mut self.carry);
        let end = self.emit(&data, data.len(), out);
        out.extend_from_slice(data.get(end..).unwrap_or_default());
    }

    /// Whether a secret has been replaced so far.
    pub(crate) fn redacted(&self) -> bool {
        self.found
    }

    /// Emits `data` up to `settled` (or past it, to the end of a match that
    /// starts before it); returns where it stopped.
    fn emit(&mut self, data: &[u8], settled: usize, out: &mut Vec<u8>) -> usize {
        let mut at = 0;
        for m in self.finder.find_iter(data) {
            if m.start() >= settled {
                break;
            }
            self.found = true;
            out.extend_from_slice(data.get(at..m.start()).unwrap_or_default());
            out.extend_from_slice(
                self.marks
                    .get(m.pattern().as_usize())
                    .map_or(&[][..], Vec::as_slice),
            );
            at = m.end();
        }
        let end = settled.max(at);
        out.extend_from_slice(data.get(at..end).unwrap_or_default());
        end
    }
}

/// Redacts a file in place (one an agent wrote itself, such as its
/// `output.md`), a chunk at a time: it is rewritten only when it held a
/// secret.
pub(crate) fn redact_file(path: &std::path::Path, redactor: &Redactor) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let Some(mut stream) = StreamRedactor::new(redactor.pairs()) else {
        return Ok(());
    };
    let mut file = std::fs::File::open(path)?;
    let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    let mut copy = tempfile::NamedTempFile::new_in(dir)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut out = Vec::new();
    let mut changed = false;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        stream.push(chunk, &mut out);
        copy.write_all(&out)?;
        out.clear();
        changed |= stream.redacted();
    }
    stream.finish(&mut out);
    copy.write_all(&out)?;
    changed |= stream.redacted();
    if changed {
        copy.persist(path).map_err(|e| e.error)?;
    }
    Ok(())
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

    #[test]
    fn a_stream_is_redacted_whatever_its_reads_split() {
        let pairs = vec![
            ("sk-ant-secret-1234".to_string(), "[redacted A]".to_string()),
            (
                "sk-ant-secret-1234-longer".to_string(),
                "[redacted L]".to_string(),
            ),
        ];
        let text = b"key sk-ant-secret-1234 and sk-ant-secret-1234-longer, sk-ant-secret-12 end";
        let want = "key [redacted A] and [redacted L], sk-ant-secret-12 end";
        for size in 1..=text.len() {
            let mut r = StreamRedactor::new(&pairs).unwrap();
            let mut out = Vec::new();
            for chunk in text.chunks(size) {
                r.push(chunk, &mut out);
            }
            r.finish(&mut out);
            assert_eq!(String::from_utf8_lossy(&out), want, "reads of {size} bytes");
        }
        assert!(StreamRedactor::new(&[]).is_none());
    }
}
