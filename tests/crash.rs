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

/// A ledger bootstrapped from the golden genesis in a new temporary directory, and the time.
fn fresh_ledger() -> (tempfile::TempDir, std::path::PathBuf, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let g = common::genesis();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Store::bootstrap(&dir, &common::file_bytes(&g), &g.genesis.state.root(), now).unwrap();
    (tmp, dir, now)
}

#[test]
fn crashes_at_random_commit_steps_never_corrupt_the_ledger() {
    let (tmp, dir, now) = fresh_ledger();
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

/// Runs `rn ARGS --state-dir DIR` with the write named `fail` failing with `errno`.
fn rn_failing(dir: &std::path::Path, fail: &str, errno: i32, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rn"))
        .args(args)
        .arg("--state-dir")
        .arg(dir)
        .env_remove("RN_FAULT_AT")
        .env("RN_FAULT_FAIL", fail)
        .env("RN_FAULT_ERRNO", errno.to_string())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A verdict is never lost to a failed write: a rejection whose audit record cannot be written
/// still exits 78 with the rejection's name (the failure on a second line), and a commit whose
/// snapshot hits a full disk says it committed.
#[test]
fn verdicts_survive_io_failures() {
    let (tmp, dir, now) = fresh_ledger();
    let chain = common::long_chain(2, now - 1800, 10);
    let file = tmp.path().join("u.json");
    let audit = dir.join("audit.log");

    // Under threshold (one signature of two), on a file system that refuses the audit write.
    let mut forged = chain[0].clone();
    forged.signatures.truncate(1);
    fs::write(&file, common::file_bytes(&forged)).unwrap();
    let audit_before = fs::read(&audit).unwrap();
    let (code, err) = rn_failing(
        &dir,
        "audit_write",
        30,
        &["member", "apply", file.to_str().unwrap()],
    );
    assert_eq!(code, 78, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("rejected: 1 of 2 signatures"), "{err}");
    assert!(
        lines[1].contains("the rejection was not audited")
            && lines[1].contains("Read-only file system"),
        "{err}"
    );
    assert_eq!(fs::read(&audit).unwrap(), audit_before);
    let (code, err) = rn_failing(
        &dir,
        "audit_write",
        30,
        &["member", "apply", file.to_str().unwrap(), "--json"],
    );
    assert_eq!(code, 78, "{err}");
    let v: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(v["error"], "BelowThreshold");
    assert!(v["unrecorded"].as_str().unwrap().contains("not audited"));

    // A full disk after the log line landed: committed, and said so.
    fs::write(&file, common::file_bytes(&chain[0])).unwrap();
    let (code, err) = rn_failing(
        &dir,
        "snapshot_write",
        28,
        &["member", "apply", file.to_str().unwrap()],
    );
    assert_eq!(code, 74, "{err}");
    assert!(
        err.contains("committed epoch 0 -> 1 (the log line is durable), but then writing the snapshot and watermark failed")
            && err.contains("No space left on device"),
        "{err}"
    );
    // The next open finishes it; applying again is a no-op.
    assert_eq!(status(&dir), ("trusted".to_owned(), 1));
    let out = rn(&dir, None, &["member", "apply", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(&dir), ("trusted".to_owned(), 1));
}
