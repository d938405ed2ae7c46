//! Parse + validate + plan of generated workflows of 1,000, 10,000 and
//! 100,000 node instances (the bar, docs/performance.md: 10,000 in at most 100 ms, linear).
//! Each generated node fans out over 10 items and needs the node before it,
//! with an inline prompt that reads params, item and the upstream results.

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set itself up has nothing to measure"
)]

use std::fmt::Write;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn workflow(instances: usize) -> String {
    let mut w = String::from(
        "version = 1\nname = \"bench\"\n[params]\nrepo = { type = \"path\", default = \".\" }\n\
         [agents.echo]\nkind = \"command\"\ncommand = [\"cat\"]\n\
         [defaults]\nagent = \"echo\"\nstop = { max_iterations = 3, timeout = \"10m\" }\n",
    );
    for n in 0..instances / 10 {
        let _ = writeln!(w, "[nodes.n{n}]");
        let _ = writeln!(
            w,
            "for_each = [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\", \"j\"]"
        );
        if n > 0 {
            let _ = writeln!(w, "needs = [\"n{}\"]", n - 1);
            let _ = writeln!(
                w,
                "prompt = \"Work on {{{{ item }}}} in {{{{ params.repo }}}} after {{{{ needs.n{} | length }}}} results\"",
                n - 1
            );
        } else {
            let _ = writeln!(
                w,
                "prompt = \"Work on {{{{ item }}}} in {{{{ params.repo }}}}\""
            );
        }
    }
    w
}

fn compile_and_plan(path: &Path) -> usize {
    let mut c = conductor::compile::compile(path, &[]);
    let program = c.program.take().expect("the generated workflow is valid");
    let (plan, _) = conductor::plan::plan(
        &program,
        &mut c.sources,
        conductor::plan::PlanOptions::default(),
    );
    plan.instances.len()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut group = c.benchmark_group("parse_validate_plan");
    group.sample_size(10);
    for size in [1_000, 10_000, 100_000] {
        let path = dir.path().join(format!("w{size}.toml"));
        std::fs::write(&path, workflow(size)).expect("write the workflow");
        assert_eq!(compile_and_plan(&path), size);
        group.bench_with_input(BenchmarkId::from_parameter(size), &path, |b, p| {
            b.iter(|| compile_and_plan(p));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
