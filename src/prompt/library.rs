//! The template search path of one workflow file and the record of every
//! template file read through it.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// A template file read by the loader.
#[derive(Debug, Clone)]
pub struct LoadedTemplate {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
}

/// The folders templates are looked up in, in order, and what was loaded.
#[derive(Debug, Clone)]
pub struct Library {
    search: Arc<Vec<PathBuf>>,
    loaded: Arc<Mutex<Vec<LoadedTemplate>>>,
}

impl Library {
    pub fn new(search: Vec<PathBuf>) -> Self {
        Self {
            search: Arc::new(search),
            loaded: Arc::default(),
        }
    }

    pub fn search_path(&self) -> &[PathBuf] {
        &self.search
    }

    /// The file a template name resolves to, if any.
    pub fn resolve(&self, name: &str) -> Option<PathBuf> {
        resolve(&self.search, name)
    }

    /// Every template file loaded so far.
    pub fn loaded(&self) -> Vec<LoadedTemplate> {
        self.loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn loader(
        &self,
    ) -> impl Fn(&str) -> Result<Option<String>, minijinja::Error> + Send + Sync + 'static {
        let search = Arc::clone(&self.search);
        let loaded = Arc::clone(&self.loaded);
        move |name| {
            if let Some(text) = super::reads::stand_in(name) {
                return Ok(Some(text));
            }
            let Some(path) = resolve(&search, name) else {
                return Ok(None);
            };
            let text = crate::source::read_text(&path).map_err(|e| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("cannot read template {}: {e}", path.display()),
                )
            })?;
            loaded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(LoadedTemplate {
                    name: name.to_string(),
                    path,
                    text: text.clone(),
                });
            Ok(Some(text))
        }
    }
}

/// Template names are `/`-separated and stay inside the search folders: no
/// absolute names and no `..`.
fn resolve(search: &[PathBuf], name: &str) -> Option<PathBuf> {
    let rel = Path::new(name);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    search.iter().map(|dir| dir.join(rel)).find(|p| p.is_file())
}
