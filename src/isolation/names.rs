//! Owns the names conductor gives in a repository (docs/isolation.md,
//! "Branches"): an instance's branch, `conductor/<workflow>/<instance>`,
//! made of readable ref components that two instances never share, and the
//! prefix of the branches that keep earlier work.

/// Every instance's branch is under this.
pub(crate) const BRANCH_PREFIX: &str = "conductor";
/// Branches of work that a new start of an instance moved aside.
pub(crate) const KEPT_PREFIX: &str = "conductor-kept";

/// Where the loop on `branch` started: the base with its needs' work
/// merged in; what the loop changed is counted from there.
pub(crate) fn start_ref(branch: &str) -> String {
    format!(
        "refs/conductor/start/{}",
        branch
            .strip_prefix(BRANCH_PREFIX)
            .and_then(|b| b.strip_prefix('/'))
            .unwrap_or(branch)
    )
}

/// `text` as one component of a git ref, readable: `worker[a.txt]` is
/// `worker.a.txt`; a name that had to lose characters gets a hash of
/// itself, so two instances never share a branch.
pub(crate) fn ref_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lossy = false;
    for c in text.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => out.push(c),
            '.' | '[' | '/' => out.push('.'),
            ']' => {}
            _ => {
                lossy = true;
                out.push('-');
            }
        }
    }
    // No `..`, no leading or trailing dot, no `.lock` ending.
    while out.contains("..") {
        out = out.replace("..", ".");
    }
    let mut out = out.trim_matches(['.', '-']).to_string();
    if std::path::Path::new(&out)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("lock"))
    {
        lossy = true;
    }
    if out.is_empty() {
        out.push_str("instance");
        lossy = true;
    }
    if lossy || out != text.replace('[', ".").replace(']', "").replace('/', ".") {
        out.push('-');
        out.push_str(&crate::store::short_hash(text, 3));
    }
    out
}

/// The branch of instance `key` of `workflow`.
pub(crate) fn branch_name(workflow: &str, key: &str) -> String {
    format!("{BRANCH_PREFIX}/{}/{}", ref_safe(workflow), ref_safe(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_keys_make_readable_distinct_branch_names() {
        assert_eq!(ref_safe("worker"), "worker");
        assert_eq!(ref_safe("worker[a.txt]"), "worker.a.txt");
        assert_eq!(ref_safe("outer/inner"), "outer.inner");
        let spaced = ref_safe("review[a b]");
        assert!(spaced.starts_with("review.a-b-"), "{spaced}");
        assert_ne!(ref_safe("review[a b]"), ref_safe("review[a:b]"));
        for odd in ["..", "x.lock", "[]", "a..b", "-x", "é"] {
            let r = ref_safe(odd);
            assert!(
                !r.is_empty()
                    && !r.contains("..")
                    && !std::path::Path::new(&r)
                        .extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("lock"))
                    && !r.starts_with(['.', '-']),
                "{odd} -> {r}"
            );
        }
    }
}
