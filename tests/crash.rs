//! Crash at every step of a commit (and of the repairs a restart makes), then restart: the
//! ledger is always the old or the new state, trusted — never corrupt, never restricted.
//! Needs the `fault-injection` feature (`make test` runs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use rn::ledger::store::Store;

const POINTS: &[&str] = &[
    "before_log_write",
    "after_log_write",
    "after_log_fsync",
    "mid_snapshot",
    "after_snapshot",
    "mid_watermark",
    "after_watermark",
    "before_truncate",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn rn(dir: &std::path::Path, fault: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rn"));
    c.args(args).arg("--state-dir").arg(dir);
    match fault {
        Some(f) => c.env("RN_FAULT_AT", f),
        None => c.env_remove("RN_FAULT_AT"),
    };
    c.output().unwrap()
}

fn status(dir: &std::path::Path) -> (String, u64) {
    let out = rn(dir, None, &["member", "status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["mode"].as_str().unwrap().to_owned(),
        v["epoch"].as_u64().unwrap(),
    )
}

#[test]
fn crashes_at_random_commit_steps_never_corrupt_the_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let g = common::genesis();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Store::bootstrap(&dir, &common::file_bytes(&g), &g.genesis.state.root(), now).unwrap();
    const ROUNDS: usize = 120;
    let chain = common::long_chain(ROUNDS, now - 1800, 10);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut crashed, mut torn, mut repair_crashes, mut old, mut new) = (0, 0, 0, 0, 0);
    for (k, su) in chain.iter().enumerate() {
        let file = tmp.path().join("u.json");
        fs::write(&file, common::file_bytes(su)).unwrap();
        let point = POINTS[rng.below(POINTS.len() as u64) as usize];
        let log = dir.join("ledger.log");
        let len_before = fs::metadata(&log).unwrap().len();
        let out = rn(
            &dir,
            Some(point),
            &["member", "apply", file.to_str().unwrap()],
        );
        if out.status.code().is_none() {
            crashed += 1;
        }
        // A power cut during the log write: only part of the line reached the disk.
        if point == "after_log_write" && rng.below(2) == 0 {
            let len_after = fs::metadata(&log).unwrap().len();
            if len_after > len_before + 2 {
                let cut = len_before + 1 + rng.below(len_after - len_before - 2);
                fs::OpenOptions::new()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                torn += 1;
            }
        }
        // Sometimes crash again, during the repairs the next open makes.
        if rng.below(3) == 0 {
            let p = POINTS[rng.below(POINTS.len() as u64) as usize];
            if rn(&dir, Some(p), &["member", "status"])
                .status
                .code()
                .is_none()
            {
                repair_crashes += 1;
            }
        }
        let (mode, epoch) = status(&dir);
        assert_eq!(
            mode, "trusted",
            "round {k}: crash at {point} left the ledger restricted"
        );
        assert!(
            epoch == k as u64 || epoch == k as u64 + 1,
            "round {k}: epoch {epoch}"
        );
        if epoch == k as u64 {
            old += 1;
            let out = rn(&dir, None, &["member", "apply", file.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "round {k}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            new += 1;
        }
        assert_eq!(status(&dir), ("trusted".to_owned(), k as u64 + 1));
    }
    let log_verify = rn(&dir, None, &["member", "log", "--verify"]);
    assert!(
        log_verify.status.success(),
        "{}",
        String::from_utf8_lossy(&log_verify.stdout)
    );
    println!(
        "crash loop: {ROUNDS} rounds, {crashed} commits killed, {torn} torn log writes, {repair_crashes} repairs killed; after restart {old} old state, {new} new state, 0 corrupt, 0 restricted"
    );
}
