//! The file bus against its quality bars (docs/performance.md): appends in one process (>= 200,000 msg/s),
//! also from ten writers at once as the Go seed's figure was taken,
//! `conductor bus post` from a shell (<= 1.5 ms each), and the last 100
//! records of a 1 GiB bus (<= 5 ms, independent of size). The 1 GiB bus is a
//! sparse file with real records at its end, so the bench needs no 1 GiB of
//! disk; a tail that read the whole file would show it at once. Then how each
//! cost grows with the records already on the bus, 1,000 to 100,000: an
//! append and a tail should not grow, a whole read should grow linearly.

#![expect(
    clippy::expect_used,
    reason = "a benchmark that cannot set itself up has nothing to measure"
)]

use std::path::Path;
use std::process::Command;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use conductor::bus::{BusWriter, NewMessage};

fn message(body: &str) -> NewMessage {
    NewMessage {
        kind: "PROGRESS".into(),
        project_id: "bench".into(),
        task_id: "task-20260101-000000-bench".into(),
        run_id: "0001-20260101-000000".into(),
        body: body.into(),
        ..NewMessage::default()
    }
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut writer = BusWriter::open(&dir.path().join("bus.md")).expect("open bus");
    let msg = message("compiled 3 crates; 41 tests pass; next: the flaky watcher test");
    let mut group = c.benchmark_group("bus_append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_process", |b| {
        b.iter(|| writer.append(&msg).expect("append"));
    });
    group.finish();
}

/// Ten threads, each with its own writer on one file, as the Go seed's
/// throughput test runs ten goroutines; the figure is messages per second
/// over all of them.
fn append_ten_writers(c: &mut Criterion) {
    const WRITERS: u64 = 10;
    const EACH: u64 = 1_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bus.md");
    let msg = message("compiled 3 crates; 41 tests pass; next: the flaky watcher test");
    let mut group = c.benchmark_group("bus_append");
    group.throughput(Throughput::Elements(WRITERS * EACH));
    group.sample_size(20);
    group.bench_function("ten_writers_one_file", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..WRITERS {
                    s.spawn(|| {
                        let mut writer = BusWriter::open(&path).expect("open bus");
                        for _ in 0..EACH {
                            writer.append(&msg).expect("append");
                        }
                    });
                }
            });
        });
    });
    group.finish();
}

/// A bus holding `records` records of a typical agent note's length.
fn bus_of(path: &Path, records: usize) {
    let mut writer = BusWriter::open(path).expect("open bus");
    for i in 0..records {
        writer
            .append(&message(&format!(
                "record {i}: compiled 3 crates; 41 tests pass; next: the flaky watcher test"
            )))
            .expect("append");
    }
}

fn growth(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sizes = [1_000usize, 10_000, 100_000];
    for &n in &sizes {
        bus_of(&dir.path().join(format!("bus-{n}.md")), n);
    }
    let msg = message("compiled 3 crates; 41 tests pass; next: the flaky watcher test");
    let mut group = c.benchmark_group("bus_growth_append");
    group.throughput(Throughput::Elements(1));
    for &n in &sizes {
        // Appends land after the n records; the few thousand the bench adds
        // leave the size within a few percent of n at 10,000 and up.
        let path = dir.path().join(format!("bus-{n}.md"));
        let mut writer = BusWriter::open(&path).expect("open bus");
        group.bench_function(n.to_string(), |b| {
            b.iter(|| writer.append(&msg).expect("append"));
        });
    }
    group.finish();
    for &n in &sizes {
        bus_of(&dir.path().join(format!("fresh-{n}.md")), n);
    }
    let mut group = c.benchmark_group("bus_growth_read_all");
    group.sample_size(10);
    for &n in &sizes {
        let path = dir.path().join(format!("fresh-{n}.md"));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(n.to_string(), |b| {
            b.iter(|| {
                let all = conductor::bus::read_all(&path).expect("read");
                assert_eq!(all.len(), n);
            });
        });
    }
    group.finish();
    let mut group = c.benchmark_group("bus_growth_tail_100");
    for &n in &sizes {
        let path = dir.path().join(format!("fresh-{n}.md"));
        group.bench_function(n.to_string(), |b| {
            b.iter(|| {
                let last = conductor::bus::tail(&path, 100).expect("tail");
                assert_eq!(last.len(), 100);
            });
        });
    }
    group.finish();
}

fn post_from_shell(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bus = dir.path().join("bus.md");
    let bin = env!("CARGO_BIN_EXE_conductor");
    let mut group = c.benchmark_group("bus_post_process");
    group.sample_size(30);
    group.bench_function("conductor_bus_post", |b| {
        b.iter(|| {
            let status = Command::new(bin)
                .args([
                    "bus",
                    "post",
                    "--bus",
                    bus.to_str().unwrap_or_default(),
                    "--project",
                    "bench",
                    "--body",
                    "done",
                ])
                .stdout(std::process::Stdio::null())
                .status()
                .expect("conductor runs");
            assert!(status.success());
        });
    });
    group.finish();
}

/// A bus of `size` bytes: a hole, then 1,000 real records at its end.
fn big_bus(path: &Path, size: u64) {
    {
        let f = std::fs::File::create(path).expect("create");
        f.set_len(size).expect("sparse file");
    }
    let mut writer = BusWriter::open(path).expect("open bus");
    for i in 0..1000 {
        writer
            .append(&message(&format!(
                "record {i} with a body of a typical length for an agent's note"
            )))
            .expect("append");
    }
}

fn tail(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("bus_tail_100");
    for (name, size) in [("1MiB", 1u64 << 20), ("1GiB", 1u64 << 30)] {
        let path = dir.path().join(format!("bus-{name}.md"));
        big_bus(&path, size);
        group.bench_function(name, |b| {
            b.iter_batched(
                || (),
                |()| {
                    let last = conductor::bus::tail(&path, 100).expect("tail");
                    assert_eq!(last.len(), 100);
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    append,
    append_ten_writers,
    post_from_shell,
    tail,
    growth
);
criterion_main!(benches);
