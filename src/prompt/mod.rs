//! Owns prompt templates: one minijinja environment per workflow file, strict
//! about undefined variables, loading `include`/`import`/`extends` from the
//! file's folder and its `[prompts] library` search path, and remembering which
//! file each template came from so that errors can point into it.

mod env;
mod environment;
mod library;
mod placeholder;
mod reads;
mod shell_quote;
pub(crate) use shell_quote::shell_word;

pub(crate) use env::env_value;
pub(crate) use environment::{
    PROMPT_GLOBALS, STRING_GLOBALS, context, environment, error_detail, is_templated,
    referenced_templates, undeclared,
};
pub(crate) use library::Library;
pub(crate) use placeholder::Placeholder;
pub(crate) use reads::{ALL_ENV, Reads, pattern, recording};
