//! The workflow files under a folder (`conductor serve --workflows DIR`),
//! each with its name, project and the params a form must ask for, or why
//! it cannot be started.

use std::path::Path;

use serde::Serialize;

/// One workflow file.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(crate) struct Workflow {
    /// Its path relative to the folder, with `/`.
    pub file: String,
    pub name: String,
    pub project: String,
    pub params: Vec<Param>,
    /// Why it cannot be started as it is (it does not compile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One param, as a form asks for it.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub(crate) struct Param {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The workflow files (`.toml`, `.kdl`) under `dir`, by path. A file that
/// another one includes is listed too: it may be applied on its own.
pub(crate) fn list(dir: &Path) -> Vec<Workflow> {
    let mut out: Vec<Workflow> = crate::walk::files(dir, None)
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "toml" || x == "kdl")
        })
        .filter_map(|e| {
            let relative = e.path().strip_prefix(dir).ok()?;
            let file = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            Some(describe(e.path(), file))
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

fn describe(path: &Path, file: String) -> Workflow {
    let params = crate::compile::params_of(path)
        .unwrap_or_default()
        .into_iter()
        .map(|p| Param {
            name: p.name.value.clone(),
            ty: p.ty.value.as_str(),
            required: p.default.is_none(),
            default: p.default.map(|d| d.value),
            choices: p.choices.map(|c| c.into_iter().map(|v| v.value).collect()),
            description: p.description.map(|d| d.value),
        })
        .collect();
    match crate::load::program(path) {
        Some(program) => Workflow {
            file,
            name: program.name.clone(),
            project: program.project.clone(),
            params,
            error: None,
        },
        None => Workflow {
            file,
            name: String::new(),
            project: String::new(),
            params,
            error: Some(format!(
                "it does not compile: run `conductor validate {}`",
                path.display()
            )),
        },
    }
}
