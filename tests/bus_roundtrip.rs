//! 10,000 records with hostile random bodies (fence-like lines, carriage
//! returns, unicode, long lines, header-like lines) go through the writer
//! `bus post` uses, some through `conductor bus post` itself, and come back
//! exactly through `conductor bus read`, its tail and a cursor.

use std::io::Write;
use std::process::Stdio;

/// splitmix64: a fixed seed makes a failure reproducible without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// Lines a bus body must carry through unchanged.
const PIECES: &[&str] = &[
    "---",
    "--- ",
    " ---",
    "----",
    "---\r",
    "---\r\r",
    "\\---",
    "\\\\---\r",
    "-- -",
    "",
    "msg_id: MSG-20260101-000000-000000000-PID00001-0001",
    "type: FACT",
    "ts: 2026-01-01T00:00:00Z",
    "meta:",
    "    apply_id: forged",
    "ünïcødé ✓ 🚀 \u{202e}rtl\u{202c} 日本語",
    "\t tabs and  spaces  ",
    "a plain line of text",
    "\u{feff}bom",
    "\r",
];

fn body(rng: &mut Rng) -> String {
    let lines = rng.below(8);
    let mut body = String::new();
    for i in 0..lines {
        if i > 0 {
            body.push_str(if rng.below(5) == 0 { "\r\n" } else { "\n" });
        }
        match rng.below(40) {
            // A long line now and then, and rarely one longer than the
            // tail's first window.
            0 if rng.below(50) == 0 => body.push_str(&"long-".repeat(20_000 + rng.below(40_000))),
            0 => body.push_str(&"long-".repeat(1 + rng.below(2_000))),
            n => body.push_str(PIECES[n % PIECES.len()]),
        }
    }
    // Trailing newlines, or none.
    for _ in 0..rng.below(3) {
        body.push('\n');
    }
    body
}

fn read_json(args: &[&str], bus: &std::path::Path) -> Vec<serde_json::Value> {
    let bus = bus.to_str().unwrap();
    let dir = std::path::Path::new(bus).parent().unwrap();
    crate::bus::read_json(dir, &[&["--bus", bus], args].concat())
}

#[test]
fn ten_thousand_random_bodies_round_trip_through_post_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let bus = dir.path().join("TASK-MESSAGE-BUS.md");
    let mut rng = Rng(0x5eed_2026_1125);
    let bodies: Vec<String> = (0..10_000).map(|_| body(&mut rng)).collect();
    let mut writer = conductor::bus::BusWriter::open(&bus).unwrap();
    for (i, body) in bodies.iter().enumerate() {
        // Every 100th through the real command, its body on stdin (an
        // empty one as `--body ''`: nothing on stdin is no body).
        if i % 100 == 0 {
            let mut post = std::process::Command::new(assert_cmd::cargo::cargo_bin("conductor"))
                .args(["bus", "post", "--project", "p", "--type", "FACT", "--bus"])
                .arg(&bus)
                .args(
                    body.is_empty()
                        .then_some(["--body", ""])
                        .into_iter()
                        .flatten(),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            post.stdin
                .take()
                .unwrap()
                .write_all(body.as_bytes())
                .unwrap();
            assert!(post.wait().unwrap().success(), "post {i}");
        } else {
            writer
                .append(&conductor::bus::NewMessage {
                    kind: "FACT".into(),
                    project_id: "p".into(),
                    body: body.clone(),
                    ..Default::default()
                })
                .unwrap();
        }
    }

    let all = read_json(&[], &bus);
    assert_eq!(all.len(), bodies.len());
    for (i, (record, body)) in all.iter().zip(&bodies).enumerate() {
        // Long bodies would drown the report: name the record and show its start.
        assert!(
            record["body"].as_str() == Some(body.as_str()) && record["type"] == "FACT",
            "record {i} of type {} came back as {:.300?}, was written as {:.300?}",
            record["type"],
            record["body"].as_str().unwrap_or_default(),
            body
        );
    }
    let ids: std::collections::HashSet<&str> =
        all.iter().map(|r| r["msg_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "ids are unique");

    // The tail starts mid-file, where a window may open inside a body.
    for n in [1, 7, 100, 1_000] {
        assert_eq!(
            read_json(&["--tail", &n.to_string()], &bus),
            all[all.len() - n..],
            "--tail {n}"
        );
    }
    let cursor = all[4_321]["msg_id"].as_str().unwrap();
    assert_eq!(read_json(&["--since", cursor], &bus), all[4_322..]);
}
