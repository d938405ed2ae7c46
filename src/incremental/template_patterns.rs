//! Owns finding the template files a name made from a run-time item may
//! load: for `{% include "parts/" ~ item ~ ".md" %}` in a run-time fan-out,
//! every file of the search path that `parts/*.md` matches. Any item may
//! pick any of them, so the fan-out's fingerprint covers them all
//! (docs/watch.md).

use std::path::Path;

use super::digest::short;
use crate::prompt::Library;

/// The most files looked at for one pattern: a search path is a folder of
/// prompts, not a whole disk.
const MAX_FILES: usize = 10_000;

/// The templates `pattern` (a name with `*` for what an item gives)
/// matches, each with the hash of its content, first folder of the search
/// path first, as the loader would find them.
pub(crate) fn matching(library: &Library, pattern: &str) -> Vec<(String, String)> {
    let Ok(glob) = globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()
        .map(|g| g.compile_matcher())
    else {
        return Vec::new();
    };
    // Only the folder before the first `*` can hold a match.
    let fixed = &pattern[..pattern.find('*').unwrap_or(pattern.len())];
    let base = fixed.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut found: Vec<(String, String)> = Vec::new();
    let mut seen = 0;
    for dir in library.search_path() {
        let mut stack = vec![dir.join(base)];
        while let Some(folder) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                seen += 1;
                if seen > MAX_FILES {
                    found.sort();
                    return found;
                }
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Some(name) = relative_name(dir, &path) else {
                    continue;
                };
                if glob.is_match(&name) && !found.iter().any(|(n, _)| *n == name) {
                    let text = std::fs::read(&path).unwrap_or_default();
                    found.push((name, short(&String::from_utf8_lossy(&text))));
                }
            }
        }
    }
    found.sort();
    found
}

/// `path` as a template name under `dir`: relative, with `/` separators.
fn relative_name(dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(dir).ok()?;
    let parts: Option<Vec<&str>> = rel.iter().map(|p| p.to_str()).collect();
    Some(parts?.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_finds_each_matching_file_with_its_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("parts/deep")).unwrap();
        std::fs::write(dir.path().join("parts/a.md"), "A").unwrap();
        std::fs::write(dir.path().join("parts/deep/b.md"), "B").unwrap();
        std::fs::write(dir.path().join("parts/c.txt"), "C").unwrap();
        std::fs::write(dir.path().join("top.md"), "T").unwrap();
        let library = Library::new(vec![dir.path().to_path_buf()]);
        let found = matching(&library, "parts/*.md");
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["parts/a.md", "parts/deep/b.md"]);
        let before = found[0].1.clone();
        std::fs::write(dir.path().join("parts/a.md"), "A2").unwrap();
        assert_ne!(matching(&library, "parts/*.md")[0].1, before);
    }
}
