//! Lexical path arithmetic. Paths in a workflow are relative to the file that
//! names them and are shown relative to the entry file, so they must be
//! rebased without touching the file system (the folders may not exist yet).

use std::path::{Component, Path, PathBuf};

/// Resolves `.` and `..` without following symlinks.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                match last {
                    Some(Component::Normal(_)) => {
                        out.pop();
                    }
                    Some(Component::RootDir | Component::Prefix(_)) => {}
                    _ => out.push(".."),
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `target` relative to `base`; both absolute and normalized.
pub(crate) fn relative_to(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component<'_>> = target.components().collect();
    let b: Vec<Component<'_>> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Text of a relative path for output: `.` for empty, `/` separators.
pub(crate) fn display_rel(path: &Path) -> String {
    let s = path.to_string_lossy().replace('\\', "/");
    if s.is_empty() { ".".to_string() } else { s }
}

/// Re-expresses `value`, written relative to `from_dir`, relative to `to_dir`.
/// Absolute values stay absolute.
pub(crate) fn rebase(value: &str, from_dir: &Path, to_dir: &Path) -> String {
    let p = Path::new(value);
    if p.is_absolute() {
        return value.to_string();
    }
    display_rel(&relative_to(
        &normalize(&from_dir.join(p)),
        &normalize(to_dir),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_goes_up_and_down() {
        assert_eq!(rebase("../x", Path::new("/a/b"), Path::new("/a/b")), "../x");
        assert_eq!(rebase("../x", Path::new("/a/b/c"), Path::new("/a/b")), "x");
        assert_eq!(rebase("x", Path::new("/a"), Path::new("/a/b")), "../x");
        assert_eq!(rebase(".", Path::new("/a"), Path::new("/a")), ".");
        assert_eq!(rebase("/abs", Path::new("/a"), Path::new("/b")), "/abs");
    }
}
