//! Owns a node's declared write scope, `writes = ["src/parser/**"]`
//! (docs/isolation.md, "Declared writes"): whether two scopes may touch the
//! same file, so that instances whose scopes overlap are not run at the
//! same time, and whether a changed file is inside a scope, so that a
//! change outside it is reported. Two globs may overlap unless the literal
//! folders they start with part ways: `src/parser/**` and `src/lexer/**`
//! cannot, `src/**` and `src/parser/*.rs` can, and so can `*.md` and
//! anything (conservative: a false overlap only serialises).

use globset::{Glob, GlobSet, GlobSetBuilder};

/// One instance's declared writes, relative to the repository (or the
/// workdir, for an instance that is not isolated).
#[derive(Debug, Clone)]
pub(crate) struct Writes {
    /// As written, relative to the workdir.
    globs: Vec<String>,
    /// The same, relative to the workflow's folder, to compare scopes of
    /// nodes with different workdirs.
    scoped: Vec<String>,
    set: GlobSet,
}

impl Writes {
    /// The scope of `globs`, relative to `workdir` (itself relative to the
    /// workflow's folder); `None` when there are none. A glob that does not
    /// parse is the caller's to have refused (compile checks them).
    pub(crate) fn new(workdir: &str, globs: &[String]) -> Option<Self> {
        if globs.is_empty() {
            return None;
        }
        let mut b = GlobSetBuilder::new();
        for g in globs {
            if let Ok(glob) = Glob::new(g) {
                b.add(glob);
            }
        }
        let scoped = globs.iter().map(|g| scoped(workdir, g)).collect();
        Some(Self {
            globs: globs.to_vec(),
            scoped,
            set: b.build().ok()?,
        })
    }

    /// Whether `path`, relative to the workdir, is inside the scope.
    pub(crate) fn allows(&self, path: &str) -> bool {
        self.set.is_match(path)
    }

    /// A pair of globs, one from each scope, that may match one file.
    pub(crate) fn overlap<'a>(&'a self, other: &'a Self) -> Option<(&'a str, &'a str)> {
        for (a, sa) in self.globs.iter().zip(&self.scoped) {
            for (b, sb) in other.globs.iter().zip(&other.scoped) {
                if globs_may_meet(sa, sb) {
                    return Some((a, b));
                }
            }
        }
        None
    }
}

/// `glob` in `workdir`, relative to the workflow's folder, without `.`
/// parts; `**` (which meets any scope) when it cannot be placed there, a
/// `..` or an absolute path in it.
fn scoped(workdir: &str, glob: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in workdir.split('/').chain(glob.split('/')) {
        match part {
            "" | "." => {}
            ".." => return "**".to_string(),
            p => parts.push(p),
        }
    }
    if glob.starts_with('/') || workdir.starts_with('/') || parts.is_empty() {
        return "**".to_string();
    }
    parts.join("/")
}

/// Whether globs `a` and `b` may match one path: their literal leading
/// folders agree as far as both go.
pub(crate) fn globs_may_meet(a: &str, b: &str) -> bool {
    let (pa, pb) = (literal_dirs(a), literal_dirs(b));
    pa.iter().zip(&pb).all(|(x, y)| x == y)
}

/// The path components of `glob` before the first with a wildcard; a
/// glob with none is a path, all of whose components count.
fn literal_dirs(glob: &str) -> Vec<&str> {
    glob.split('/')
        .take_while(|c| !c.contains(['*', '?', '[', '{']))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_meet_unless_their_folders_part_ways() {
        assert!(!globs_may_meet("src/parser/**", "src/lexer/**"));
        assert!(globs_may_meet("src/**", "src/parser/*.rs"));
        assert!(globs_may_meet("*.md", "docs/a.md"));
        assert!(globs_may_meet("docs/a.md", "docs/a.md"));
        assert!(!globs_may_meet("docs/a.md", "docs/b.md"));
        assert!(!globs_may_meet("a/x/**", "b/**"));
        let w = Writes::new(".", &["src/parser/**".into()]).expect("a scope");
        assert!(w.allows("src/parser/mod.rs"));
        assert!(!w.allows("src/lexer/mod.rs"));
        let other = Writes::new(".", &["src/**".into()]).expect("a scope");
        assert_eq!(w.overlap(&other), Some(("src/parser/**", "src/**")));
        let elsewhere = Writes::new("other", &["src/**".into()]).expect("a scope");
        assert_eq!(w.overlap(&elsewhere), None, "another workdir's src/");
        let dotted = Writes::new("./", &["./src/parser/x.rs".into()]).expect("a scope");
        assert!(w.overlap(&dotted).is_some(), "`./` is no different path");
        let up = Writes::new("sub", &["../src/lexer/**".into()]).expect("a scope");
        assert!(w.overlap(&up).is_some(), "`..` may meet anything");
        assert!(Writes::new(".", &[]).is_none());
    }
}
