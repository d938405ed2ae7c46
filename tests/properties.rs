//! Property tests: no input makes either parser, the decoder or the
//! compiler panic, and random workflows written in TOML and in KDL compile
//! to the same plan.

use std::fmt::Write;

use proptest::prelude::*;

fn compile_text(ext: &str, text: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("w.{ext}"));
    std::fs::write(&path, text).unwrap();
    let c = conductor::compile::compile(&path, &[]);
    c.program.is_some()
}

const SEED_TOML: &str = include_str!("../examples/hello/workflow.toml");
const SEED_KDL: &str = include_str!("../examples/hello/workflow.kdl");

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn toml_front_end_never_panics(text in "\\PC{0,400}") {
        compile_text("toml", &text);
    }

    #[test]
    fn kdl_front_end_never_panics(text in "\\PC{0,400}") {
        compile_text("kdl", &text);
    }

    /// Cutting or splicing a valid file gives diagnostics, never a panic.
    #[test]
    fn mangled_workflows_never_panic(cut in 0usize..2000, insert in "[\\[\\]{}=\"#a-z \\n.-]{0,12}", kdl in any::<bool>()) {
        let seed = if kdl { SEED_KDL } else { SEED_TOML };
        let mut at = cut.min(seed.len());
        while !seed.is_char_boundary(at) { at -= 1; }
        let text = format!("{}{insert}{}", &seed[..at], &seed[at..]);
        compile_text(if kdl { "kdl" } else { "toml" }, &text);
    }

    /// Whatever a node id or item is, its task id has the seed's shape and is
    /// one plain folder name: it cannot lead out of the runs root.
    #[test]
    fn task_ids_stay_inside_the_runs_root(key in "\\PC{0,120}", apply in "[a-z0-9-]{1,20}") {
        let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let id = conductor::store::task_id(now, &apply, &key);
        prop_assert!(conductor::store::is_task_id(&id), "{}", id);
        let root = std::path::Path::new("/runs/project");
        let joined = root.join(&id);
        prop_assert_eq!(joined.parent(), Some(root));
        prop_assert!(!id.contains(".."));
    }

    /// A generated workflow written in both syntaxes plans identically.
    #[test]
    fn toml_and_kdl_agree(ids in prop::collection::btree_set("[a-z][a-z0-9]{0,6}", 1..6), iters in 1u32..20, items in prop::collection::vec("[a-z]{1,5}", 0..4)) {
        let ids: Vec<String> = ids.into_iter().collect();
        let mut toml = String::from("version = 1\nname = \"gen\"\n[agents.echo]\nkind = \"command\"\ncommand = [\"cat\"]\n");
        let mut kdl = String::from("version 1\nname \"gen\"\nagent \"echo\" kind=\"command\" {\n    command \"cat\"\n}\n");
        for (i, id) in ids.iter().enumerate() {
            let needs: Vec<&String> = ids[..i].iter().rev().take(2).collect();
            let _ = write!(toml, "[nodes.{id}]\nagent = \"echo\"\nprompt = \"do {{{{ node }}}}\"\nstop = {{ max_iterations = {iters}, timeout = \"5m\" }}\n");
            let _ = write!(kdl, "node \"{id}\" agent=\"echo\" {{\n    prompt \"do {{{{ node }}}}\"\n    stop max-iterations={iters} timeout=\"5m\"\n");
            if !needs.is_empty() {
                let list: Vec<String> = needs.iter().map(|n| format!("\"{n}\"")).collect();
                let _ = writeln!(toml, "needs = [{}]", list.join(", "));
                let _ = writeln!(kdl, "    needs {}", list.join(" "));
            }
            if i == 0 && !items.is_empty() {
                let list: Vec<String> = items.iter().map(|n| format!("\"{n}\"")).collect();
                let _ = writeln!(toml, "for_each = [{}]", list.join(", "));
                let _ = writeln!(kdl, "    for-each {}", list.join(" "));
            }
            kdl.push_str("}\n");
        }
        let dir = tempfile::tempdir().unwrap();
        let (t, k) = (dir.path().join("w.toml"), dir.path().join("w.kdl"));
        std::fs::write(&t, &toml).unwrap();
        std::fs::write(&k, &kdl).unwrap();
        let plan = |p: &std::path::Path| {
            let mut c = conductor::compile::compile(p, &[]);
            let program = c.program.take().unwrap_or_else(|| panic!("{} does not compile: {:?}", p.display(), c.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()));
            let (plan, _) = conductor::plan::plan(&program, &mut c.sources, conductor::plan::PlanOptions { show_prompts: true, ..Default::default() });
            conductor::plan::json::to_json(&plan)
        };
        prop_assert_eq!(plan(&t), plan(&k));
    }
}
