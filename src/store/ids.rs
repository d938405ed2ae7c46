//! Task ids `task-<UTC apply start>-<slug>-<16 hex>` (docs/run-store.md) and run ids
//! that lead with a zero-padded per-task sequence. Both use only `a-z`, `0-9`
//! and `-`, so no node id or item can make a path that leaves the runs root.

use std::fmt::Write;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

/// The longest the part after `task-YYYYMMDD-HHMMSS-` may be in the seed's
/// pattern `[a-z0-9][a-z0-9-]{1,48}[a-z0-9]`.
const TAIL_MAX: usize = 50;

/// Bytes of the hash in a task id: 64 bits, so that two instance keys of one
/// apply (which `validate` makes distinct) share a task folder with a chance
/// of about n² / 2⁶⁵ (10⁻¹¹ for 20,000 instances); with 24 bits, 20,000
/// similar items shared 11 folders.
const HASH_BYTES: usize = 8;

/// The id of one node instance's task in one apply: the apply's start time,
/// a readable slug of the instance key, and 16 hex digits of a hash of the
/// apply id and the whole instance key, so two applies started within the
/// same second, or two items whose slugs are equal (or cut the same), do
/// not share a folder.
pub fn task_id(apply_start: Timestamp, apply_id: &str, instance_key: &str) -> String {
    let hash = short_hash(&format!("{apply_id}\n{instance_key}"), HASH_BYTES);
    let mut slug = slug(instance_key);
    slug.truncate(TAIL_MAX - hash.len() - 1);
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "node" } else { slug };
    format!("task-{}-{slug}-{hash}", stamp(apply_start))
}

/// The first `bytes` bytes of the SHA-256 of `text`, in hex.
pub(crate) fn short_hash(text: &str, bytes: usize) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(bytes)
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `000001-20260301-101502`: the run's number within its task first, so
/// that run folders sort in creation order whatever the clock does.
pub fn run_id(seq: u32, now: Timestamp) -> String {
    format!("{seq:06}-{}", stamp(now))
}

/// Whether `id` has the seed's task id shape.
pub fn is_task_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("task-") else {
        return false;
    };
    let (date, rest) = rest.split_at_checked(8).unwrap_or(("", ""));
    let Some(rest) = rest.strip_prefix('-') else {
        return false;
    };
    let (time, rest) = rest.split_at_checked(6).unwrap_or(("", ""));
    let Some(tail) = rest.strip_prefix('-') else {
        return false;
    };
    date.bytes().all(|b| b.is_ascii_digit())
        && time.bytes().all(|b| b.is_ascii_digit())
        && (3..=TAIL_MAX).contains(&tail.len())
        && tail
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !tail.starts_with('-')
        && !tail.ends_with('-')
}

/// Whether `id` is a valid project id: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`.
pub fn is_project_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

fn stamp(t: Timestamp) -> String {
    let utc = t.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        utc.year(),
        utc.month(),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

/// Lower-case letters and digits; every other run of characters one `-`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Timestamp {
        "2026-03-01T10:15:02Z".parse().unwrap()
    }

    #[test]
    fn task_ids_are_readable_and_fit_the_seed_pattern() {
        let id = task_id(t(), "apply-1", "review-dev-docs[docs/dev/testing.md]");
        assert!(
            id.starts_with("task-20260301-101502-review-dev-docs-docs-dev-testing-"),
            "{id}"
        );
        assert!(is_task_id(&id), "{id}");
        let long = task_id(t(), "a", &"x".repeat(300));
        assert!(is_task_id(&long), "{long}");
        let odd = task_id(t(), "a", "../../etc/passwd");
        assert!(
            is_task_id(&odd) && !odd.contains('/') && !odd.contains(".."),
            "{odd}"
        );
        let empty = task_id(t(), "a", "[]");
        assert!(empty.starts_with("task-20260301-101502-node-"), "{empty}");
    }

    #[test]
    fn task_ids_differ_by_apply_and_by_key() {
        assert_ne!(task_id(t(), "a", "n[x]"), task_id(t(), "b", "n[x]"));
        assert_ne!(task_id(t(), "a", "n[a b]"), task_id(t(), "a", "n[a-b]"));
    }

    #[test]
    fn similar_keys_whose_slugs_are_cut_the_same_get_their_own_ids() {
        // Keys alike in their first 60 characters, as items of one glob are:
        // the slug is cut the same, and only the hash tells them apart.
        let prefix = "review-dev-docs[docs/dev/a-very-long-folder-name/and-deeper/";
        let ids: std::collections::HashSet<String> = (0..20_000)
            .map(|i| task_id(t(), "apply-1", &format!("{prefix}file-{i}.md]")))
            .collect();
        assert_eq!(ids.len(), 20_000);
        assert!(ids.iter().all(|id| is_task_id(id)));
    }

    #[test]
    fn run_ids_sort_by_sequence() {
        let later: Timestamp = "2026-03-01T10:15:09Z".parse().unwrap();
        let earlier_clock: Timestamp = "2026-03-01T09:00:00Z".parse().unwrap();
        assert!(run_id(1, later) < run_id(2, earlier_clock));
        assert_eq!(run_id(7, t()), "000007-20260301-101502");
    }

    #[test]
    fn project_ids() {
        assert!(is_project_id("conductor-loop"));
        assert!(!is_project_id("Conductor"));
        assert!(!is_project_id("-x"));
        assert!(!is_project_id("a/b"));
    }
}
