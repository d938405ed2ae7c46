//! Owns what conductor knows of each agent kind in one table: the program
//! and non-interactive flags a CLI kind starts with, how it is told its
//! model, the variables it needs to run unattended, the API keys it may
//! see, and how to install it when it is missing. docs/agents.md is the
//! user's view of the same table; adding a kind starts here.

use crate::model::AgentKind;

/// One agent CLI, driven non-interactively.
#[derive(Debug)]
pub(crate) struct Cli {
    /// The program's name on PATH.
    pub(crate) program: &'static str,
    /// The arguments that make it run one prompt unattended and print a
    /// JSON event stream.
    pub(crate) preset: &'static [&'static str],
    /// The flag that names the model.
    pub(crate) model_flag: &'static str,
    /// The npm package it is installed from.
    pub(crate) package: &'static str,
}

const CLAUDE: Cli = Cli {
    program: "claude",
    preset: &[
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--dangerously-skip-permissions",
    ],
    model_flag: "--model",
    package: "@anthropic-ai/claude-code",
};

const CODEX: Cli = Cli {
    program: "codex",
    preset: &[
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
    ],
    model_flag: "--model",
    package: "@openai/codex",
};

const GEMINI: Cli = Cli {
    program: "gemini",
    preset: &["--output-format", "stream-json", "--yolo"],
    model_flag: "--model",
    package: "@google/gemini-cli",
};

/// The CLI a kind drives; `None` for `command` and the HTTP kinds.
pub(crate) fn cli(kind: AgentKind) -> Option<&'static Cli> {
    match kind {
        AgentKind::Claude => Some(&CLAUDE),
        AgentKind::Codex => Some(&CODEX),
        AgentKind::Gemini => Some(&GEMINI),
        AgentKind::Command | AgentKind::Openai | AgentKind::Anthropic => None,
    }
}

/// An argv that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ArgvError {
    #[error("a `command` agent needs `command = [\"program\", ...]`")]
    NoCommand,
}

/// The argv of a process agent. `command` runs what it names; the CLI kinds
/// get their non-interactive preset, `args` replacing it, `extra_args`
/// appended, `model` passed with the CLI's own flag. HTTP kinds have none
/// (validation refuses `command`, `args` and `extra_args` on them).
pub(crate) fn argv(
    kind: AgentKind,
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    extra_args: Vec<String>,
    model: Option<&str>,
) -> Result<Vec<String>, ArgvError> {
    let mut full: Vec<String> = match (kind, cli(kind)) {
        (AgentKind::Command, _) => {
            let mut cmd = command
                .filter(|c| !c.is_empty())
                .ok_or(ArgvError::NoCommand)?;
            if let Some(args) = args {
                cmd.extend(args);
            }
            cmd
        }
        (_, Some(cli)) => {
            // `command` replaces the program (`["npx", "claude"]`), keeping the preset.
            let mut line = command
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| vec![cli.program.to_string()]);
            match args {
                Some(args) => line.extend(args),
                None => line.extend(cli.preset.iter().map(|s| (*s).to_string())),
            }
            // A `model` written in the workflow is passed even when `args`
            // replace the preset: dropping it silently would run another model.
            if let Some(m) = model {
                line.push(cli.model_flag.to_string());
                line.push(m.to_string());
            }
            line
        }
        (_, None) => return Ok(Vec::new()),
    };
    full.extend(extra_args);
    Ok(full)
}

/// Variables a CLI kind needs to run unattended. They override conductor's
/// inherited environment; the workflow's `env` overrides them.
pub(crate) fn preset_env(kind: AgentKind) -> Vec<(&'static str, &'static str)> {
    match kind {
        // As root, claude refuses `--dangerously-skip-permissions` unless
        // it is told it runs in a sandbox (CI machines and containers run
        // as root).
        AgentKind::Claude if rustix::process::getuid().is_root() => vec![("IS_SANDBOX", "1")],
        // In a folder gemini was never told to trust it silently drops
        // `--yolo`, and an unattended run cannot answer its prompts.
        AgentKind::Gemini => vec![("GEMINI_CLI_TRUST_WORKSPACE", "true")],
        _ => Vec::new(),
    }
}

/// The vendor key variables an agent of this kind may see.
pub(crate) fn vendor_keys(kind: AgentKind) -> &'static [&'static str] {
    match kind {
        AgentKind::Claude | AgentKind::Anthropic => &["ANTHROPIC_API_KEY"],
        AgentKind::Codex | AgentKind::Openai => &["OPENAI_API_KEY"],
        AgentKind::Gemini => &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        AgentKind::Command => &[],
    }
}

/// What to do about a program that is not on PATH.
pub(crate) fn install_hint(kind: AgentKind) -> String {
    match cli(kind) {
        Some(cli) => format!("install it with `npm install -g {}`", cli.package),
        None => "install it, or fix the agent's `command`".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_is_told_it_runs_in_a_sandbox_only_as_root_and_gemini_trusts_its_folder() {
        let root = rustix::process::getuid().is_root();
        assert_eq!(
            preset_env(AgentKind::Claude).contains(&("IS_SANDBOX", "1")),
            root
        );
        assert_eq!(
            preset_env(AgentKind::Gemini),
            [("GEMINI_CLI_TRUST_WORKSPACE", "true")]
        );
        assert!(preset_env(AgentKind::Codex).is_empty());
        assert!(preset_env(AgentKind::Command).is_empty());
    }

    #[test]
    fn presets_take_model_args_and_extra_args() {
        let codex = argv(
            AgentKind::Codex,
            None,
            None,
            vec!["--x".into()],
            Some("gpt-5.5"),
        )
        .unwrap();
        assert_eq!(
            codex,
            [
                "codex",
                "exec",
                "--json",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                "--model",
                "gpt-5.5",
                "--x"
            ]
        );
        // `command` names the program; `args` replaces the preset, and the model is still passed.
        let claude = argv(
            AgentKind::Claude,
            Some(vec!["npx".into(), "claude".into()]),
            Some(vec!["-p".into(), "--verbose".into()]),
            Vec::new(),
            Some("sonnet"),
        )
        .unwrap();
        assert_eq!(
            claude,
            ["npx", "claude", "-p", "--verbose", "--model", "sonnet"]
        );
        let http = argv(AgentKind::Openai, None, None, Vec::new(), Some("m")).unwrap();
        assert!(http.is_empty(), "an HTTP agent runs no program: {http:?}");
        assert_eq!(
            argv(AgentKind::Command, None, None, Vec::new(), None),
            Err(ArgvError::NoCommand)
        );
    }

    #[test]
    fn a_missing_cli_names_its_npm_package() {
        assert_eq!(
            install_hint(AgentKind::Codex),
            "install it with `npm install -g @openai/codex`"
        );
        assert_eq!(
            install_hint(AgentKind::Command),
            "install it, or fix the agent's `command`"
        );
    }
}
