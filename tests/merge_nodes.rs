//! Merge nodes on real git repositories in temporary folders
//! (docs/isolation.md, "Merge nodes"): branches merged one at a time with
//! `verify` after each, a conflicting or failing branch undone and left
//! unmerged with the reason said, a conflict resolved by a resolving
//! agent, and the branch a person has checked out moved only when asked
//! for and never over their uncommitted changes.

use std::io::Read;

use crate::apply_support::{alive, instance, pids, state, wait_for};
use crate::isolation::{flow_in_repo, git, on_branch};

/// Workers on branches of their own, and a merge node landing them.
/// `WORK` is the worker's shell line; `MERGE` the merge table's keys.
const LANDING: &str = r#"version = 1
name = "landing"

[agents.writer]
kind = "command"
command = ["sh", "-c", "WORK"]

[agents.fixer]
kind = "command"
command = ["sh", "-c", "printf 'line 0\na\nb\n' > shared.txt && git add shared.txt && echo resolved"]

[defaults]
agent = "writer"
workdir = "repo"
isolation = "worktree"
stop = { exit_zero = true, max_iterations = 1 }

[nodes.worker]
for_each = ["a", "b", "c"]
env = { ITEM = "{{ item }}" }
prompt = "write {{ item }}"

[nodes.land]
merge = { from = ["worker"], MERGE }
"#;

fn landing(work: &str, merge: &str) -> String {
    LANDING.replace("WORK", work).replace("MERGE", merge)
}

/// What `conductor validate` says of the flow it refuses (exit 2).
fn refused(flow: &crate::apply_support::Flow) -> String {
    let out = crate::support::conductor()
        .current_dir(flow.path())
        .args(["validate", "flow.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

/// The merge node's `--json` answer.
fn answer(summary: &serde_json::Value) -> &serde_json::Value {
    &instance(summary, "land")["merge"]
}

#[test]
fn branches_are_merged_one_at_a_time_and_one_failing_verify_is_left_out_and_said() {
    let toml = landing(
        r#"echo \"$ITEM\" > \"own-$ITEM.txt\""#,
        r#"verify = ["test ! -e own-b.txt"]"#,
    );
    let (flow, repo) = flow_in_repo(&toml);
    let main_before = git(&repo, &["rev-parse", "main"]);
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert_eq!(
        state(&summary, "land"),
        ("failed".into(), "unmerged".into(), 0)
    );
    let report = answer(&summary);
    let merged: Vec<&str> = report["merged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["instance"].as_str().unwrap())
        .collect();
    assert_eq!(merged, ["worker[a]", "worker[c]"]);
    assert_eq!(report["unmerged"][0]["instance"], "worker[b]");
    assert_eq!(
        report["unmerged"][0]["reason"],
        "verify failed: `test ! -e own-b.txt` exited 1"
    );
    // The integration branch holds a's and c's work and nothing of b's;
    // the person's branch did not move.
    let branch = "conductor/landing/land";
    assert_eq!(report["target"], branch);
    assert_eq!(on_branch(&repo, branch, "own-a.txt"), "a");
    assert_eq!(on_branch(&repo, branch, "own-c.txt"), "c");
    let files = git(&repo, &["ls-tree", "--name-only", branch]);
    assert!(!files.contains("own-b.txt"), "{files}");
    assert_eq!(git(&repo, &["rev-parse", "main"]), main_before);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    // Each branch's fate is on the project bus.
    let bus: Vec<String> = flow
        .project_records()
        .iter()
        .filter(|r| r["meta"]["merged_instance"].is_string())
        .map(|r| {
            format!(
                "{} {}",
                r["type"].as_str().unwrap(),
                r["body"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(bus.len(), 3, "{bus:?}");
    assert!(
        bus[1].starts_with("WARN land: worker[b] (conductor/landing/worker.b) not merged into conductor/landing/land: verify failed"),
        "{bus:?}"
    );
    assert!(bus[2].starts_with("INFO land: worker[c]"), "{bus:?}");
    // With every verify passing, everything lands.
    let toml = landing(
        r#"echo \"$ITEM\" > \"own-$ITEM.txt\""#,
        r#"verify = ["true"]"#,
    );
    let (flow, _) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert!(out.status.success(), "{summary}");
    assert_eq!(state(&summary, "land"), ("done".into(), "merged".into(), 0));
    assert_eq!(answer(&summary)["merged"].as_array().unwrap().len(), 3);
    // `conductor logs` tells what it merged; applied again with nothing
    // changed, it is up to date.
    let logs = crate::support::conductor()
        .current_dir(flow.path())
        .args(["logs", "land", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    let told = String::from_utf8_lossy(&logs.stdout);
    assert!(
        told.contains("worker[b]: merged (conductor/landing/worker.b)")
            && told.contains("merged work on conductor/landing/land"),
        "{told}"
    );
    let (out, summary) = flow.apply(&[]);
    assert!(out.status.success(), "{summary}");
    assert_eq!(
        state(&summary, "land"),
        ("done".into(), "up_to_date".into(), 0)
    );
}

#[test]
fn a_conflicting_branch_is_left_unmerged_and_the_checked_out_branch_asked_for_moves() {
    let toml = landing(r#"echo \"$ITEM\" >> shared.txt"#, r#"into = "main""#);
    let (flow, repo) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(1), "{summary}");
    let report = answer(&summary);
    assert_eq!(report["merged"][0]["instance"], "worker[a]");
    for (n, key) in ["worker[b]", "worker[c]"].iter().enumerate() {
        assert_eq!(report["unmerged"][n]["instance"], *key);
        assert_eq!(
            report["unmerged"][n]["reason"],
            "it conflicts in shared.txt"
        );
        assert_eq!(
            report["unmerged"][n]["files"],
            serde_json::json!(["shared.txt"])
        );
    }
    // `main`, checked out and clean, was fast-forwarded to a's work: the
    // person's files show it, and nothing is half-merged anywhere.
    assert_eq!(report["landed"], true);
    assert_eq!(
        std::fs::read_to_string(repo.join("shared.txt")).unwrap(),
        "line 0\na\n"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    let wt = repo.join(".git/conductor/worktrees/landing/land");
    assert_eq!(git(&wt, &["status", "--porcelain"]), "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("land: worker[b] not merged into main: it conflicts in shared.txt"),
        "{stderr}"
    );
}

#[test]
fn the_checked_out_branch_never_moves_over_uncommitted_changes() {
    let toml = landing(r#"echo \"$ITEM\" > \"own-$ITEM.txt\""#, r#"into = "main""#);
    let (flow, repo) = flow_in_repo(&toml);
    std::fs::write(repo.join("shared.txt"), "line 0\nmine, not committed\n").unwrap();
    let main_before = git(&repo, &["rev-parse", "main"]);
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert_eq!(
        state(&summary, "land"),
        ("failed".into(), "unmerged".into(), 0)
    );
    let error = instance(&summary, "land")["error"].as_str().unwrap();
    assert!(
        error.starts_with("main is checked out in ")
            && error.contains("with uncommitted changes (shared.txt): nothing there was touched")
            && error.contains("merge --ff-only conductor/landing/land"),
        "{error}"
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), main_before);
    assert_eq!(
        std::fs::read_to_string(repo.join("shared.txt")).unwrap(),
        "line 0\nmine, not committed\n"
    );
    // Every branch was merged; the work waits on the merge's own branch.
    assert_eq!(answer(&summary)["merged"].as_array().unwrap().len(), 3);
    assert_eq!(answer(&summary)["landed"], false);
    assert_eq!(on_branch(&repo, "conductor/landing/land", "own-b.txt"), "b");
}

#[test]
fn a_resolving_agent_resolves_a_conflict_told_both_sides_and_the_task() {
    let toml = landing(
        r#"echo \"$ITEM\" >> shared.txt"#,
        r#"on_conflict = "fixer""#,
    )
    .replace(r#"for_each = ["a", "b", "c"]"#, r#"for_each = ["a", "b"]"#);
    let (flow, repo) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert!(out.status.success(), "{summary}");
    assert_eq!(state(&summary, "land"), ("done".into(), "merged".into(), 0));
    let report = answer(&summary);
    assert_eq!(report["merged"][0]["how"], "merged");
    assert_eq!(report["merged"][1]["how"], "resolved");
    let branch = "conductor/landing/land";
    assert_eq!(on_branch(&repo, branch, "shared.txt"), "line 0\na\nb");
    let parents = git(&repo, &["log", "-1", "--format=%P", branch]);
    assert_eq!(parents.split(' ').count(), 2, "a merge commit: {parents}");
    // What the resolver was told: the branch, the files, both sides and
    // what worker[b] was asked.
    let told = flow
        .prompts()
        .into_iter()
        .find(|p| p.contains("conflict"))
        .unwrap();
    for needle in [
        "merging branch conductor/landing/worker.b (the work of worker[b])",
        "- shared.txt",
        "+a",
        "+b",
        "write b",
    ] {
        assert!(told.contains(needle), "{needle:?} in {told}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "land: worker[b] merged, its conflicts resolved by fixer into conductor/landing/land"
        ),
        "{stderr}"
    );
    // The web page's instance view says what the merge did, as `logs` does.
    let served = crate::serve_support::Served::start(&flow.root(), &[], &[]);
    let apply = served.latest_apply();
    let detail = served
        .get(&format!(
            "/api/v1/projects/landing/applies/{apply}/instances/land"
        ))
        .json();
    assert_eq!(detail["instance"]["stop_reason"], "merged");
    assert_eq!(
        detail["merge"],
        "worker[a]: merged (conductor/landing/worker.a)\nworker[b]: merged (conflicts resolved) (conductor/landing/worker.b)\nmerged work on conductor/landing/land"
    );
}

#[test]
fn a_merge_of_a_node_that_is_not_isolated_or_with_agent_keys_is_refused_where_written() {
    let toml = landing("true", r#"into = "bad name""#)
        .replace("[nodes.land]", "[nodes.plain]\nisolation = \"none\"\nprompt = \"p\"\n\n[nodes.land]\nagent = \"writer\"")
        .replace(r#"from = ["worker"]"#, r#"from = ["worker", "plain", "nobody"]"#);
    let toml = format!(
        "{toml}\n[nodes.again]\nmerge = {{ from = [\"worker\"], into = \"conductor/x\" }}\n"
    );
    let (flow, _) = flow_in_repo(&toml);
    let stderr = refused(&flow);
    for needle in [
        "node `land` merges `plain`, which is not isolated",
        "a merge node has no `agent`",
        "node `land` merges `nobody`, which is not a node of this workflow",
        "`bad name` is not a branch name",
        "`conductor/x` is one of conductor's own branches",
    ] {
        assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    }
    // A resolving agent for a node that merges no branches.
    let toml = landing("true", "").replace(
        "[nodes.land]",
        "[nodes.loose]\nisolation = \"none\"\non_conflict = \"fixer\"\nprompt = \"p\"\n\n[nodes.land]",
    );
    let (flow, _) = flow_in_repo(&toml.replace(", }", " }"));
    let stderr = refused(&flow);
    assert!(
        stderr.contains("node `loose` sets `on_conflict` but is not isolated"),
        "{stderr}"
    );
}

#[test]
fn a_failed_worker_is_left_out_and_the_others_land() {
    let toml = landing(
        r#"test \"$ITEM\" != b && echo \"$ITEM\" > \"own-$ITEM.txt\""#,
        r#"verify = ["true"]"#,
    );
    let (flow, repo) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert_eq!(state(&summary, "land"), ("done".into(), "merged".into(), 0));
    let report = answer(&summary);
    assert_eq!(report["merged"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["not_done"][0]["instance"], "worker[b]");
    assert_eq!(
        report["not_done"][0]["reason"],
        "it ended failed (max_iterations)"
    );
    assert_eq!(on_branch(&repo, "conductor/landing/land", "own-c.txt"), "c");
}

#[test]
fn what_a_passing_verify_leaves_is_cleared_and_a_dirty_merge_worktree_does_not_block_the_next_run()
{
    // The verify leaves an untracked own-c.txt behind, in the way of
    // merging worker[c]'s own-c.txt unless it is cleared.
    let toml = landing(
        r#"echo \"$ITEM\" > \"own-$ITEM.txt\""#,
        r#"verify = ["test -e own-c.txt || echo junk > own-c.txt"]"#,
    );
    let (flow, repo) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert!(out.status.success(), "{summary}");
    assert_eq!(answer(&summary)["merged"].as_array().unwrap().len(), 3);
    assert_eq!(on_branch(&repo, "conductor/landing/land", "own-c.txt"), "c");
    // A merge cut short leaves its worktree dirty, mid-merge: the next
    // run starts it clean.
    let wt = repo.join(".git/conductor/worktrees/landing/land");
    std::fs::write(wt.join("own-a.txt"), "half a merge\n").unwrap();
    std::fs::write(wt.join("stray.txt"), "junk\n").unwrap();
    let (out, summary) = flow.apply(&["--force=land"]);
    assert!(out.status.success(), "{summary}");
    assert_eq!(state(&summary, "land"), ("done".into(), "merged".into(), 0));
    assert_eq!(on_branch(&repo, "conductor/landing/land", "own-a.txt"), "a");
    assert!(!wt.join("stray.txt").exists());
}

#[test]
fn a_resolving_agent_that_gives_up_or_fails_leaves_the_branch_unmerged_and_undone() {
    for (fixer, why) in [
        (
            "git merge --abort",
            "fixer did not finish the merge: the merge was given up",
        ),
        (
            "exit 1",
            "it conflicts in shared.txt, and fixer did not resolve it (max_iterations",
        ),
    ] {
        let toml = landing(
            r#"echo \"$ITEM\" >> shared.txt"#,
            r#"on_conflict = "fixer""#,
        )
        .replace(r#"for_each = ["a", "b", "c"]"#, r#"for_each = ["a", "b"]"#)
        .replace(
            "printf 'line 0\\na\\nb\\n' > shared.txt && git add shared.txt && echo resolved",
            fixer,
        );
        let (flow, repo) = flow_in_repo(&toml);
        let (out, summary) = flow.apply(&[]);
        assert_eq!(out.status.code(), Some(1), "{summary}");
        let report = answer(&summary);
        let reason = report["unmerged"][0]["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{why:?} in {reason}");
        let wt = repo.join(".git/conductor/worktrees/landing/land");
        assert_eq!(git(&wt, &["status", "--porcelain"]), "");
        assert_eq!(
            on_branch(&repo, "conductor/landing/land", "shared.txt"),
            "line 0\na"
        );
    }
}

#[test]
fn ctrl_c_during_a_verify_stops_the_merge_and_moves_nothing_of_the_persons() {
    let mark = tempfile::tempdir().unwrap();
    let pid_file = mark.path().join("verify.pid");
    let toml = landing(
        r#"echo \"$ITEM\" > \"own-$ITEM.txt\""#,
        &format!(
            r#"into = "main", verify = ["echo $$ > {} && exec sleep 30"]"#,
            pid_file.display()
        ),
    );
    let (flow, repo) = flow_in_repo(&toml);
    let main_before = git(&repo, &["rev-parse", "main"]);
    let mut child = flow.spawn(&["--json", "--grace", "2s"]);
    wait_for("the verify to start", || pids(&pid_file).len() == 1);
    crate::apply_process::signal(child.id(), "-INT");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    // The verify command is gone with the apply.
    assert!(!alive(pids(&pid_file)[0]), "the verify outlived Ctrl-C");
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        state(&summary, "land"),
        ("failed".into(), "interrupted".into(), 0)
    );
    let report = answer(&summary);
    assert_eq!(report["landed"], false);
    assert!(
        report["unmerged"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("the merge was stopped during `echo"),
        "{report}"
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), main_before);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}

#[test]
fn a_fan_in_node_with_a_resolving_agent_starts_from_its_needs_work_with_the_conflict_resolved() {
    let toml = crate::isolation::FAN_IN
        .replace("FILE_{{ item }}.txt", "shared.txt")
        .replace("LINE_", "from ")
        .replace(
            "[nodes.review]\n",
            "[nodes.review]\non_conflict = \"fixer\"\n",
        )
        .replace(
            "[defaults]",
            "[agents.fixer]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"printf 'from a\\\\nfrom b\\\\n' > shared.txt && git add shared.txt\"]\n\n[defaults]",
        );
    let (flow, repo) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert!(out.status.success(), "{summary}");
    assert_eq!(
        state(&summary, "review"),
        ("done".into(), "exit_zero".into(), 1)
    );
    let answer = flow
        .files()
        .into_iter()
        .find(|(p, _)| {
            p.to_string_lossy().contains("task-")
                && p.to_string_lossy().contains("-review-")
                && p.ends_with("output.md")
        })
        .map(|(_, t)| t)
        .unwrap();
    assert_eq!(answer.trim(), "from a from b");
    let log = git(&repo, &["log", "--format=%s", "conductor/fanin/review"]);
    assert!(
        log.contains("conductor: merge the work of worker[b] (conductor/fanin/worker.b)"),
        "{log}"
    );
    // The resolving agent's loop is a task of its own, told the conflict.
    let told = flow
        .prompts()
        .into_iter()
        .find(|p| p.contains("conflict"))
        .unwrap();
    assert!(told.contains("the work of worker[b]"), "{told}");
    // Without the agent resolving it, the fan-in fails as before, saying so.
    let toml = toml.replace(
        "printf 'from a\\\\nfrom b\\\\n' > shared.txt && git add shared.txt",
        "true",
    );
    let (flow, _) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(1), "{summary}");
    assert_eq!(
        state(&summary, "review"),
        ("failed".into(), "merge_conflict".into(), 0)
    );
    let error = instance(&summary, "review")["error"].as_str().unwrap();
    assert!(
        error.starts_with("merging the work of worker[b] (branch conductor/fanin/worker.b): fixer left conflicts in shared.txt"),
        "{error}"
    );
}
