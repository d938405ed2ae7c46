//! Isolated instances on real git repositories in temporary folders
//! (docs/isolation.md): each instance in a worktree and on a branch of its
//! own, a commit per iteration, the user's checkout never touched, resume
//! from the branch after conductor is killed (SIGKILL), fan-in from the needs'
//! branches, overlaps reported, and the machine checked before anything
//! runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::apply_support::{Flow, state, wait_for};

/// `git args` in `dir`, as a user with an identity of their own; its
/// standard output, trimmed.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=user", "-c", "user.email=user@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// A flow whose workdir is `repo/`, a git repository with `shared.txt`
/// committed; the runs root is beside it, not in it.
pub(crate) fn flow_in_repo(toml: &str) -> (Flow, PathBuf) {
    let flow = Flow::new(toml);
    let repo = flow.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("shared.txt"), "line 0\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "first"]);
    (flow, repo)
}

/// `dir/repo`, a git repository whose one commit is empty.
fn empty_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "first"]);
    repo
}

/// The `--json` summary's entry for instance `key`.
fn instance<'s>(summary: &'s serde_json::Value, key: &str) -> &'s serde_json::Value {
    summary["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == key)
        .unwrap()
}

/// The file `path` as committed on `branch`.
pub(crate) fn on_branch(repo: &Path, branch: &str, path: &str) -> String {
    git(repo, &["show", &format!("{branch}:{path}")])
}

const THREE_WRITERS: &str = r#"version = 1
name = "edits"

[agents.writer]
kind = "command"
command = ["sh", "-c", "echo \"$ITEM\" >> shared.txt; echo \"$ITEM\" > \"own-$ITEM.txt\""]

[defaults]
agent = "writer"
workdir = "repo"
isolation = "worktree"
stop = { exit_zero = true, max_iterations = 1 }

[nodes.worker]
for_each = ["a", "b", "c"]
env = { ITEM = "{{ item }}" }
prompt = "edit"
"#;

#[test]
fn three_parallel_instances_edit_one_file_each_on_a_branch_of_its_own_and_the_overlap_is_said() {
    let (flow, repo) = flow_in_repo(THREE_WRITERS);
    // The user's own uncommitted change, staged and not.
    std::fs::write(repo.join("shared.txt"), "line 0\nthe user's edit\n").unwrap();
    std::fs::write(repo.join("staged.txt"), "staged\n").unwrap();
    git(&repo, &["add", "staged.txt"]);
    let status_before = git(&repo, &["status", "--porcelain"]);
    let head_before = git(&repo, &["rev-parse", "HEAD"]);
    // A worktree of the user's whose folder is gone (an unmounted disk):
    // git's record of it is theirs, not conductor's to prune.
    let theirs = flow.path().join("elsewhere");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            &theirs.to_string_lossy(),
        ],
    );
    std::fs::remove_dir_all(&theirs).unwrap();
    let (out, summary) = flow.apply(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for item in ["a", "b", "c"] {
        let key = format!("worker[{item}]");
        assert_eq!(
            state(&summary, &key),
            ("done".into(), "exit_zero".into(), 1)
        );
        let branch = format!("conductor/edits/worker.{item}");
        // Each saw the committed file alone, not the others' edits nor the
        // user's uncommitted one.
        assert_eq!(
            on_branch(&repo, &branch, "shared.txt"),
            format!("line 0\n{item}")
        );
        assert_eq!(on_branch(&repo, &branch, &format!("own-{item}.txt")), item);
        let log = git(&repo, &["log", "--format=%an %s", "-1", &branch]);
        assert_eq!(log, format!("conductor conductor: edits {key} iteration 1"));
        let entry = instance(&summary, &key);
        assert_eq!(entry["worktree"]["branch"], branch.as_str());
        assert_eq!(entry["worktree"]["base"], head_before.as_str());
        assert_eq!(
            entry["worktree"]["files"],
            serde_json::json!([format!("own-{item}.txt"), "shared.txt"])
        );
    }
    // Each run's record names its branch and base.
    let infos: Vec<String> = flow
        .files()
        .into_iter()
        .filter(|(p, _)| p.ends_with("run-info.yaml"))
        .map(|(_, t)| t)
        .collect();
    assert_eq!(infos.len(), 3);
    assert!(
        infos
            .iter()
            .any(|t| t.contains("branch: conductor/edits/worker.a")
                && t.contains(&format!("base: {head_before}"))),
        "{infos:?}"
    );
    assert!(
        git(&repo, &["worktree", "list"]).contains("elsewhere"),
        "the user's worktree record is kept"
    );
    // The user's checkout, index and uncommitted changes are as they were.
    assert_eq!(git(&repo, &["status", "--porcelain"]), status_before);
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head_before);
    assert_eq!(git(&repo, &["branch", "--show-current"]), "main");
    assert_eq!(
        std::fs::read_to_string(repo.join("shared.txt")).unwrap(),
        "line 0\nthe user's edit\n"
    );
    // The three changed shared.txt side by side: said in --json, on the
    // project bus and on the console.
    assert_eq!(
        summary["overlaps"],
        serde_json::json!([{"instances": ["worker[a]", "worker[b]", "worker[c]"], "files": ["shared.txt"]}])
    );
    let warn = flow
        .project_records()
        .into_iter()
        .find(|r| r["type"] == "WARN")
        .expect("the overlap is on the project bus");
    assert_eq!(warn["meta"]["overlap_files"], "shared.txt");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("overlap: worker[a], worker[b], worker[c] ran side by side and changed the same files: shared.txt"),
        "{stderr}"
    );
    assert!(
        stderr.contains("conductor/edits/worker.a  2 files, +2 -0"),
        "{stderr}"
    );
    // `status` reads the same from the run store.
    let status = crate::support::conductor()
        .current_dir(flow.path())
        .args(["status", "--workflow", "flow.toml", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("branch conductor/edits/worker.b (2 files, +2 -0)"),
        "{status}"
    );
    let logs = crate::support::conductor()
        .current_dir(flow.path())
        .args(["logs", "worker[c]", "--workflow", "flow.toml", "--root"])
        .arg(flow.root())
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&logs.stderr);
    assert!(
        logs.contains("worker[c]: branch conductor/edits/worker.c (2 files, +2 -0)"),
        "{logs}"
    );
}

#[test]
fn a_new_run_starts_from_the_base_and_keeps_the_earlier_work_on_a_branch_of_its_own() {
    let (flow, repo) = flow_in_repo(THREE_WRITERS);
    let (out, _) = flow.apply(&["--only=worker[a]"]);
    assert!(out.status.success());
    let first = git(&repo, &["rev-parse", "conductor/edits/worker.a"]);
    let (out, _) = flow.apply(&["--only=worker[a]", "--force"]);
    assert!(out.status.success());
    // Started again from the base: one edit, not two.
    assert_eq!(
        on_branch(&repo, "conductor/edits/worker.a", "shared.txt"),
        "line 0\na"
    );
    let kept = git(
        &repo,
        &[
            "branch",
            "--list",
            "conductor-kept/*",
            "--format=%(refname:short)",
        ],
    );
    assert_eq!(
        kept,
        format!("conductor-kept/edits/worker.a/{}", &first[..12])
    );
    assert_eq!(git(&repo, &["rev-parse", &kept]), first, "nothing is lost");
}

#[test]
fn a_working_tree_base_starts_from_the_users_uncommitted_changes_without_touching_them() {
    let (flow, repo) = flow_in_repo(&THREE_WRITERS.replace(
        "isolation = \"worktree\"",
        "isolation = \"worktree\"\nbase = \"working-tree\"",
    ));
    std::fs::write(repo.join("shared.txt"), "line 0\nuncommitted\n").unwrap();
    std::fs::write(repo.join("untracked.txt"), "new\n").unwrap();
    let status_before = git(&repo, &["status", "--porcelain"]);
    let (out, summary) = flow.apply(&["--only=worker[b]"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        on_branch(&repo, "conductor/edits/worker.b", "shared.txt"),
        "line 0\nuncommitted\nb"
    );
    assert_eq!(
        on_branch(&repo, "conductor/edits/worker.b", "untracked.txt"),
        "new"
    );
    // The base is a snapshot commit on HEAD, not HEAD itself.
    let base = summary["instances"][0]["worktree"]["base"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(base, git(&repo, &["rev-parse", "HEAD"]));
    assert_eq!(
        git(&repo, &["rev-parse", &format!("{base}^")]),
        git(&repo, &["rev-parse", "HEAD"])
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), status_before);
}

/// Each worker writes a file of its own; the reviewer lists what it sees.
pub(crate) const FAN_IN: &str = r#"version = 1
name = "fanin"

[agents.writer]
kind = "command"
command = ["sh", "-c", "printf '%s\n' \"$LINE\" > \"$FILE\""]

[agents.lister]
kind = "command"
command = ["sh", "-c", "cat *.txt | sort | tr '\n' ' '"]

[defaults]
agent = "writer"
workdir = "repo"
isolation = "worktree"
stop = { exit_zero = true, max_iterations = 1 }

[nodes.worker]
for_each = ["a", "b"]
env = { FILE = "FILE_{{ item }}.txt", LINE = "LINE_{{ item }}" }
prompt = "edit"

[nodes.review]
needs = ["worker"]
agent = "lister"
prompt = "review {{ needs.worker | map(attribute='branch') | join(' ') }}"
"#;

#[test]
fn a_fan_in_node_starts_from_its_needs_work_merged_in() {
    let toml = FAN_IN.replace("FILE_", "own-").replace("LINE_", "from ");
    let (flow, repo) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        state(&summary, "review"),
        ("done".into(), "exit_zero".into(), 1)
    );
    let answer = flow
        .files()
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().contains("review") && p.ends_with("output.md"))
        .map(|(_, t)| t)
        .unwrap();
    assert_eq!(answer.trim(), "from a from b line 0");
    let log = git(&repo, &["log", "--format=%s", "conductor/fanin/review"]);
    assert!(
        log.contains("conductor: merge the work of worker[a] (conductor/fanin/worker.a)")
            && log.contains("conductor: merge the work of worker[b] (conductor/fanin/worker.b)"),
        "{log}"
    );
    // What the reviewer itself changed: nothing (the merges are its start).
    let review = instance(&summary, "review");
    assert_eq!(review["worktree"]["files"], serde_json::json!([]));
    assert!(summary.get("overlaps").is_none(), "{summary}");
}

#[test]
fn a_fan_in_whose_needs_conflict_fails_with_the_files_named_and_nothing_half_merged() {
    let toml = FAN_IN
        .replace("FILE_{{ item }}.txt", "shared.txt")
        .replace("LINE_", "from ");
    let (flow, repo) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        state(&summary, "review"),
        ("failed".into(), "merge_conflict".into(), 0)
    );
    let review = instance(&summary, "review");
    assert_eq!(
        review["error"],
        "merging the work of worker[b] (branch conductor/fanin/worker.b) conflicts in shared.txt"
    );
    // The worktree is left clean on the first need's work.
    let wt = repo.join(".git/conductor/worktrees/fanin/review");
    assert_eq!(git(&wt, &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(wt.join("shared.txt")).unwrap(),
        "from a\n"
    );
    assert_eq!(
        summary["overlaps"][0]["files"],
        serde_json::json!(["shared.txt"])
    );
}

#[test]
fn after_sigkill_the_resumed_loop_goes_on_from_its_branch_with_the_cut_iterations_work() {
    let flow = Flow::empty();
    let (go, hanging) = (flow.path().join("go"), flow.path().join("hanging"));
    let toml = format!(
        r#"version = 1
name = "long"

[agents.slow]
kind = "command"
command = ["sh", "-c", """
echo "iteration $CONDUCTOR_ITERATION, run $JRUN_ID" > "step-$CONDUCTOR_ITERATION.txt"
if [ -e "$GO" ]; then touch "$JRUN_TASK_FOLDER/DONE"; exit 0; fi
if [ "$CONDUCTOR_ITERATION" = 2 ]; then touch "$HANGING"; exec sleep 60; fi
"""]

[nodes.n]
agent = "slow"
workdir = "repo"
isolation = "worktree"
prompt = "work"
stop = {{ done_file = true, max_iterations = 5 }}
env = {{ GO = "{}", HANGING = "{}" }}
"#,
        go.display(),
        hanging.display()
    );
    std::fs::write(flow.path().join("flow.toml"), toml).unwrap();
    let repo = empty_repo(flow.path());
    let mut child = flow.spawn(&[]);
    wait_for("the second iteration", || hanging.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let branch = "conductor/long/n";
    // Iteration 1 was committed as it ended; iteration 2 was cut.
    assert_eq!(
        git(&repo, &["log", "--format=%s", branch]),
        "conductor: long n iteration 1\nfirst"
    );
    std::fs::write(&go, "").unwrap();
    let (out, summary) = flow.apply(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(state(&summary, "n"), ("done".into(), "done_file".into(), 2));
    let log = git(&repo, &["log", "--format=%s", branch]);
    assert_eq!(
        log,
        "conductor: long n iteration 2\nconductor: long n, work an interrupted iteration left\nconductor: long n iteration 1\nfirst"
    );
    // The cut iteration's file was kept, then written again by the rerun.
    for step in ["step-1.txt", "step-2.txt"] {
        assert!(!on_branch(&repo, branch, step).is_empty(), "{step}");
    }
}

#[test]
fn without_a_repository_or_with_an_unknown_base_nothing_runs_and_the_fix_is_said() {
    let flow = Flow::new(
        r#"version = 1
name = "nogit"
[agents.a]
kind = "command"
command = ["true"]
[nodes.n]
agent = "a"
prompt = "x"
isolation = "worktree"
"#,
    );
    let (out, _) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("node `n`:") && stderr.contains("is not in a git repository"),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: run it in a git repository"),
        "{stderr}"
    );
    let (flow, _repo) = flow_in_repo(&THREE_WRITERS.replace(
        "isolation = \"worktree\"",
        "isolation = \"worktree\"\nbase = \"no-such-branch\"",
    ));
    let (out, _) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`no-such-branch` names no commit in"),
        "{stderr}"
    );
    assert!(!flow.root().join("edits").exists() || flow.files_named("run-info.yaml").is_empty());
}

#[test]
fn base_and_network_on_a_node_that_is_not_isolated_are_refused_where_written() {
    let flow = Flow::new(
        r#"version = 1
name = "t"
[agents.a]
kind = "command"
command = ["true"]
[nodes.n]
agent = "a"
prompt = "x"
base = "main"
network = false
"#,
    );
    let (out, _) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("node `n` sets `base` but is not isolated")
            && stderr.contains("node `n` sets `network` but is not sandboxed")
            && stderr.contains("flow.toml:9:8"),
        "{stderr}"
    );
}

#[test]
#[ignore = "needs bubblewrap (bwrap); .ci/run installs it and runs this"]
fn a_sandboxed_agent_writes_only_its_worktree_and_without_network_reaches_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The probes work on the host: outside the sandbox they would succeed.
    let probe = Command::new("bash")
        .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
        .status()
        .unwrap();
    assert!(probe.success(), "the connection probe works on the host");
    // Not under /tmp, which the sandbox replaces with a private one.
    let outside = tempfile::tempdir_in(crate::support::root().join("target")).unwrap();
    let toml = format!(
        r#"version = 1
name = "boxed"

[agents.probe]
kind = "command"
command = ["sh", "-c", """
echo inside > inside.txt
if echo escaped > "{outside}/escaped.txt"; then echo WROTE_OUTSIDE; fi
if echo "gitdir: /elsewhere" > .git; then echo REDIRECTED_GIT; fi
if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo CONNECTED; fi
echo finished
"""]

[nodes.n]
agent = "probe"
workdir = "repo"
isolation = "sandbox"
network = false
prompt = "x"
stop = {{ exit_zero = true, max_iterations = 1 }}
"#,
        outside = outside.path().display()
    );
    let (flow, repo) = flow_in_repo(&toml);
    let (out, summary) = flow.apply(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = flow
        .files()
        .into_iter()
        .find(|(p, _)| p.ends_with("output.md"))
        .map(|(_, t)| t)
        .unwrap();
    assert_eq!(answer.trim(), "finished", "{answer}");
    assert!(!outside.path().join("escaped.txt").exists());
    assert_eq!(
        on_branch(&repo, "conductor/boxed/n", "inside.txt"),
        "inside"
    );
    assert_eq!(state(&summary, "n").0, "done");
    drop(listener);
}

/// git makes worktrees in one repository safely only one at a time; this
/// failed on every run before conductor took a lock for it (a worktree of
/// 2,000 files takes long enough for eight to collide).
#[test]
#[ignore = "slow: eight worktrees of 2,000 files; .ci/run runs it"]
fn many_instances_make_their_worktrees_at_once_in_one_repository() {
    let toml = THREE_WRITERS.replace(
        r#"for_each = ["a", "b", "c"]"#,
        r#"for_each = ["a", "b", "c", "d", "e", "f", "g", "h"]"#,
    );
    let (flow, repo) = flow_in_repo(&toml);
    // Enough files that making a worktree takes a while.
    for i in 0..2000 {
        std::fs::write(repo.join(format!("file-{i}.txt")), format!("{i}\n")).unwrap();
    }
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "many files"]);
    let (out, summary) = flow.apply(&["--max-parallel", "8"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for item in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        assert_eq!(
            state(&summary, &format!("worker[{item}]")),
            ("done".into(), "exit_zero".into(), 1)
        );
    }
    assert_eq!(git(&repo, &["worktree", "list"]).lines().count(), 9);
}

#[test]
fn the_isolation_example_runs_in_a_repository_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    let example = crate::support::root().join("examples/isolation");
    for entry in std::fs::read_dir(&example).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, repo.join(path.file_name().unwrap())).unwrap();
    }
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "the example"]);
    let out = crate::support::conductor()
        .current_dir(repo)
        .args(["apply", "workflow.toml", "--json", "--root"])
        .arg(dir.path().join("runs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        state(&summary, "review"),
        ("done".into(), "exit_zero".into(), 1)
    );
    let changes = on_branch(repo, "conductor/isolation/review", "CHANGES.md");
    for topic in ["parser", "lexer", "docs"] {
        assert!(changes.contains(&format!("- {topic}: noted")), "{changes}");
    }
    assert_eq!(
        summary["overlaps"][0]["files"],
        serde_json::json!(["CHANGES.md"])
    );
    // `land` merged every worker's branch onto its own.
    assert_eq!(state(&summary, "land"), ("done".into(), "merged".into(), 0));
    let landed = on_branch(repo, "conductor/isolation/land", "CHANGES.md");
    for topic in ["parser", "lexer", "docs"] {
        assert!(landed.contains(&format!("- {topic}: noted")), "{landed}");
        on_branch(
            repo,
            "conductor/isolation/land",
            &format!("notes/{topic}.md"),
        );
    }
    assert_eq!(
        git(repo, &["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
}

#[test]
fn gc_removes_what_holds_no_unsaved_work_and_keeps_the_rest_saying_why() {
    let (flow, repo) =
        flow_in_repo(&THREE_WRITERS.replace("echo \\\"$ITEM\\\" >> shared.txt; ", ""));
    let (out, _) = flow.apply(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let worktrees = repo.join(".git/conductor/worktrees/edits");
    // b has uncommitted work; c's branch is merged into the user's main.
    std::fs::write(worktrees.join("worker.b/notes.txt"), "not committed").unwrap();
    git(
        &repo,
        &["merge", "-q", "--no-edit", "conductor/edits/worker.c"],
    );
    let gc = |args: &[&str]| {
        let out = crate::support::conductor()
            .current_dir(&repo)
            .arg("gc")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dry = gc(&["--dry-run", "--branches"]);
    assert!(
        dry.contains("would remove  .git/conductor/worktrees/edits/worker.c  (branch conductor/edits/worker.c is merged into main)"),
        "{dry}"
    );
    assert!(
        worktrees.join("worker.c").exists(),
        "--dry-run removes nothing"
    );
    let done = gc(&["--branches"]);
    assert!(
        done.contains("kept          .git/conductor/worktrees/edits/worker.a  (branch conductor/edits/worker.a has 1 commit no branch of yours has"),
        "{done}"
    );
    assert!(
        done.contains(
            "kept          .git/conductor/worktrees/edits/worker.b  (it has uncommitted changes)"
        ),
        "{done}"
    );
    assert!(
        done.contains("removed       conductor/edits/worker.c  (merged into main)"),
        "{done}"
    );
    assert!(!worktrees.join("worker.c").exists());
    assert!(worktrees.join("worker.a/own-a.txt").exists());
    assert_eq!(
        std::fs::read_to_string(worktrees.join("worker.b/notes.txt")).unwrap(),
        "not committed"
    );
    let branches = git(&repo, &["branch", "--format=%(refname:short)"]);
    assert_eq!(
        branches,
        "conductor/edits/worker.a\nconductor/edits/worker.b\nmain"
    );
}

#[test]
fn gc_leaves_the_worktree_of_a_running_loop_alone() {
    let flow = Flow::empty();
    let running = flow.path().join("running");
    std::fs::write(
        flow.path().join("flow.toml"),
        format!(
            r#"version = 1
name = "busy"
[agents.a]
kind = "command"
command = ["sh", "-c", "touch '{}'; exec sleep 30"]
[nodes.n]
agent = "a"
workdir = "repo"
isolation = "worktree"
prompt = "x"
"#,
            running.display()
        ),
    )
    .unwrap();
    let repo = empty_repo(flow.path());
    let mut child = flow.spawn(&[]);
    wait_for("the agent to run", || running.exists());
    let out = crate::support::conductor()
        .current_dir(&repo)
        .args(["gc", "--branches"])
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .contains("kept          .git/conductor/worktrees/busy/n  (in use by a running apply)"),
        "{stdout}"
    );
    assert!(repo.join(".git/conductor/worktrees/busy/n").exists());
}

#[test]
fn declared_writes_that_meet_run_one_at_a_time_and_a_change_outside_them_is_said() {
    let flow = Flow::empty();
    let log = flow.path().join("log");
    std::fs::write(
        flow.path().join("flow.toml"),
        format!(
            r#"version = 1
name = "scoped"

[agents.writer]
kind = "command"
command = ["sh", "-c", """
echo "start $CONDUCTOR_INSTANCE" >> '{log}'
mkdir -p src docs && echo "$CONDUCTOR_INSTANCE" > "$FILE"
sleep 0.2
echo "end $CONDUCTOR_INSTANCE" >> '{log}'
"""]

[defaults]
agent = "writer"
workdir = "repo"
isolation = "worktree"
stop = {{ exit_zero = true, max_iterations = 1 }}

[nodes.worker]
for_each = ["a", "b"]
writes = ["src/**"]
env = {{ FILE = "src/{{{{ item }}}}.rs" }}
prompt = "x"

[nodes.docs]
writes = ["docs/**"]
env = {{ FILE = "src/stray.rs" }}
prompt = "x"
"#,
            log = log.display()
        ),
    )
    .unwrap();
    empty_repo(flow.path());
    // The plan says so before anything runs.
    let plan = crate::support::conductor()
        .current_dir(flow.path())
        .args(["validate", "flow.toml"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&plan.stderr);
    assert!(
        said.contains("the instances of `worker` declare writes that may meet (`src/**`): they will run one at a time"),
        "{said}"
    );
    let (out, summary) = flow.apply(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = std::fs::read_to_string(&log).unwrap();
    let workers: Vec<&str> = lines.lines().filter(|l| l.contains("worker")).collect();
    // Never both workers at once: each ends before the other starts.
    assert!(
        workers
            == [
                "start worker[a]",
                "end worker[a]",
                "start worker[b]",
                "end worker[b]"
            ]
            || workers
                == [
                    "start worker[b]",
                    "end worker[b]",
                    "start worker[a]",
                    "end worker[a]"
                ],
        "{lines}"
    );
    // docs ran beside a worker (its scope meets neither).
    let first_end = lines.lines().position(|l| l.starts_with("end")).unwrap();
    assert!(
        lines.lines().take(first_end).any(|l| l == "start docs"),
        "{lines}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("waits for worker[")
            && stderr.contains("to end: their declared writes overlap (src/** and src/**)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("docs: changed files outside its declared writes: src/stray.rs"),
        "{stderr}"
    );
    let docs = instance(&summary, "docs");
    assert_eq!(
        docs["worktree"]["outside_writes"],
        serde_json::json!(["src/stray.rs"])
    );
    let records = flow.project_records();
    let warn = records
        .iter()
        .find(|r| r["type"] == "WARN" && r["meta"]["outside_writes"].is_string())
        .expect("on the project bus");
    assert_eq!(warn["meta"]["outside_writes"], "src/stray.rs");
    let waits = records
        .iter()
        .find(|r| r["type"] == "INFO" && r["meta"]["waiting_for"].is_string())
        .expect("the wait is on the project bus");
    assert_eq!(waits["meta"]["writes"], "src/**");
}

#[test]
fn an_agent_that_switches_branches_has_nothing_committed_there_and_is_told_why() {
    let toml = r#"version = 1
name = "switch"
[agents.a]
kind = "command"
command = ["sh", "-c", "git checkout -q -b side && echo first > first.txt"]
[nodes.n]
agent = "a"
workdir = "repo"
isolation = "worktree"
prompt = "x"
stop = { exit_zero = true, max_iterations = 1 }
"#;
    let (flow, repo) = flow_in_repo(toml);
    let first = git(&repo, &["rev-parse", "main"]);
    let (out, summary) = flow.apply(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        state(&summary, "n"),
        ("failed".into(), "worktree_error".into(), 1)
    );
    let error = summary["instances"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(
            "is on branch side, not on its branch conductor/switch/n: nothing was committed"
        ),
        "{error}"
    );
    // The agent's branch did not move; its change waits in the worktree.
    assert_eq!(git(&repo, &["rev-parse", "side"]), first);
    let wt = repo.join(".git/conductor/worktrees/switch/n");
    assert_eq!(
        std::fs::read_to_string(wt.join("first.txt")).unwrap(),
        "first\n"
    );
    // A new run does not reset or commit onto it either.
    let (out, summary) = flow.apply(&["--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(state(&summary, "n").1, "worktree_error");
    assert_eq!(git(&repo, &["rev-parse", "side"]), first);
    assert_eq!(
        std::fs::read_to_string(wt.join("first.txt")).unwrap(),
        "first\n"
    );
    // Nor does gc: the branch is the agent's, not conductor's.
    let gc = || {
        let out = crate::support::conductor()
            .current_dir(&repo)
            .args(["gc", "--branches"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = gc();
    assert!(said.contains("(it has uncommitted changes)"), "{said}");
    std::fs::remove_file(wt.join("first.txt")).unwrap();
    let said = gc();
    assert!(
        said.contains("(it is on branch side, which is not conductor's)"),
        "{said}"
    );
    assert_eq!(git(&repo, &["rev-parse", "side"]), first, "never deleted");
}
