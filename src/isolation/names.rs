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

/// `text` as one component of a git ref, readable: `worker[a]` is
/// `worker.a`. Only a name of letters, digits, `-` and `_`, with at most
/// one `[...]` of them, maps back to one text; any other (`worker[a.txt]`,
/// `outer/inner`, `w[a][b]`) gets a hash of itself too, so two instances
/// never share a branch.
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
    if lossy || !plain(text) {
        out.push('-');
        out.push_str(&crate::store::short_hash(text, 3));
    }
    out
}

/// Whether `text` is `name` or `name[item]`, both of letters, digits, `-`
/// and `_`: the only shape the readable mapping cannot confuse.
fn plain(text: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    match text.split_once('[') {
        None => word(text),
        Some((name, rest)) => word(name) && rest.strip_suffix(']').is_some_and(word),
    }
}

/// The branch of instance `key` of `workflow`.
pub(crate) fn branch_name(workflow: &str, key: &str) -> String {
    format!("{BRANCH_PREFIX}/{}/{}", ref_safe(workflow), ref_safe(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_end_knows_conductors_branches_by_these_prefixes() {
        assert_eq!(
            crate::compile::OWN_BRANCHES,
            [format!("{BRANCH_PREFIX}/"), format!("{KEPT_PREFIX}/")]
        );
    }

    #[test]
    fn instance_keys_make_readable_distinct_branch_names() {
        assert_eq!(ref_safe("worker"), "worker");
        assert_eq!(ref_safe("worker[a]"), "worker.a");
        let dotted = ref_safe("worker[a.txt]");
        assert!(dotted.starts_with("worker.a.txt-"), "{dotted}");
        assert!(ref_safe("outer/inner").starts_with("outer.inner-"));
        // Keys the readable mapping would merge stay apart.
        let merged = ["w[a.b]", "w[a/b]", "w[a][b]", "w.a[b]"].map(ref_safe);
        for (i, a) in merged.iter().enumerate() {
            for b in &merged[i + 1..] {
                assert_ne!(a, b);
            }
        }
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
