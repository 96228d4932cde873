//! The state directory: commits, reloads, catch-up, fork evidence, and every tamper case of
//! spec §7 — each detected with its own error or restriction, and nothing else changed on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{T0, sign, update_on};
use rn::files::FileError;
use rn::ledger::Rejection;
use rn::ledger::log::AuditEvent;
use rn::ledger::store::{Mode, Repair, Restriction, Store, StoreError, mirror_path};
use rn::ledger::types::Sha256Digest;
use rn::ledger::update::Op;

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    pin: Sha256Digest,
}

/// A ledger bootstrapped from the golden genesis, with the first `n` golden updates applied.
fn ledger(n: usize) -> Dir {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state");
    let g = common::genesis();
    let pin = g.genesis.state.root();
    let mut store = Store::bootstrap(&path, &common::file_bytes(&g), &pin, T0).unwrap();
    let chain = common::chain();
    for (i, su) in chain.updates.iter().take(n).enumerate() {
        store
            .apply(
                std::slice::from_ref(su),
                T0 + 100 * (i as u64 + 1) + 10,
                "test",
            )
            .unwrap();
    }
    Dir {
        _tmp: tmp,
        path,
        pin,
    }
}

fn open(d: &Dir) -> Result<Store, StoreError> {
    Store::open(&d.path, Some(&d.pin), T0 + 10_000)
}

fn restriction(d: &Dir) -> Restriction {
    match open(d).unwrap().mode() {
        Mode::Restricted(r) => r.clone(),
        Mode::Trusted => panic!("expected a restricted ledger"),
    }
}

/// Every file's bytes except the audit log (which records the detection) and the lock.
fn files(d: &Dir) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in fs::read_dir(&d.path).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "audit.log" && name != "lock" && e.path().is_file() {
            m.insert(name, fs::read(e.path()).unwrap());
        }
    }
    m
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    let i = at.min(b.len() - 2);
    b[i] ^= 0x01;
    fs::write(path, b).unwrap();
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    fs::read(path)
        .unwrap()
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    fs::write(path, out).unwrap();
}

#[test]
fn commits_survive_reopening_and_match_the_golden_chain() {
    let d = ledger(7);
    let s = open(&d).unwrap();
    assert_eq!(*s.mode(), Mode::Trusted);
    assert_eq!(s.state().root(), common::chain().states[7].root());
    assert_eq!(s.history().len(), 7);
    assert!(s.repairs().is_empty(), "{:?}", s.repairs());
    assert_eq!(s.audit_status().broken, None);
}

#[test]
fn replayed_stale_and_gap_updates_change_nothing() {
    let d = ledger(2);
    let chain = common::chain();
    let before = files(&d);
    let mut s = open(&d).unwrap();
    // The same update again: a clean "already applied".
    let r = s.apply(&chain.updates[1..2], T0 + 5000, "t").unwrap();
    assert_eq!((r.already, r.committed.len()), (1, 0));
    // A different, under-signed update for epoch 2: stale.
    let other = sign(
        update_on(
            &chain.states[1],
            900,
            T0 + 150,
            vec![Op::RevokeNode {
                id: "db-1".parse().unwrap(),
            }],
        ),
        &["alice"],
    );
    let e = s.apply(&[other], T0 + 200, "t").unwrap_err();
    assert_eq!(e.rejection().map(Rejection::name), Some("Stale"), "{e}");
    // Epoch 4 on a ledger at epoch 2: gap.
    let e = s.apply(&chain.updates[3..4], T0 + 410, "t").unwrap_err();
    assert_eq!(e.rejection().map(Rejection::name), Some("Gap"), "{e}");
    // Replay: an update whose id was already committed, re-signed for the next epoch.
    let mut replay = update_on(
        &chain.states[2],
        1,
        T0 + 300,
        vec![Op::RevokeNode {
            id: "db-1".parse().unwrap(),
        }],
    );
    replay.update_id = chain.updates[0].update.update_id;
    let e = s
        .apply(&[sign(replay, &["alice", "bob"])], T0 + 310, "t")
        .unwrap_err();
    assert_eq!(e.rejection().map(Rejection::name), Some("Replay"), "{e}");
    drop(s);
    assert_eq!(
        files(&d),
        before,
        "rejections write nothing but audit records"
    );
    let audit = open(&d).unwrap().audit_records().unwrap();
    let checks: Vec<_> = audit.iter().filter_map(|r| r.check.clone()).collect();
    assert_eq!(checks, ["Stale", "Gap", "Replay"]);
}

#[test]
fn a_quorum_signed_conflict_is_kept_as_fork_evidence() {
    let d = ledger(2);
    let chain = common::chain();
    let mut s = open(&d).unwrap();
    // alice and bob also signed a different epoch-2 update.
    let conflict = sign(
        update_on(
            &chain.states[1],
            901,
            T0 + 210,
            vec![Op::RevokeNode {
                id: "web-1".parse().unwrap(),
            }],
        ),
        &["alice", "bob"],
    );
    let other_root = conflict.update.new_root;
    let e = s.apply(&[conflict], T0 + 220, "laptop.json").unwrap_err();
    // The epoch where the histories differ, this ledger's root there and the other one's.
    match e.rejection() {
        Some(Rejection::Fork {
            epoch,
            expected,
            found,
        }) => {
            assert_eq!(epoch.get(), 2);
            assert_eq!(*expected, chain.states[2].root());
            assert_eq!(*found, other_root);
        }
        other => panic!("expected Fork, got {other:?}"),
    }
    assert_eq!(s.state().epoch().get(), 2, "the committed chain is kept");
    drop(s);
    let s = open(&d).unwrap();
    assert_eq!(s.fork_evidence().len(), 1);
    let last = s.audit_records().unwrap().pop().unwrap();
    assert_eq!(
        (last.event.name(), last.check.as_deref()),
        ("fork_evidence", Some("Fork"))
    );
}

#[test]
fn a_lagging_ledger_catches_up_with_one_bundle() {
    let d = ledger(0);
    let chain = common::long_chain(50, T0 + 100, 60);
    let mut s = open(&d).unwrap();
    // Fifty updates, all long expired except the last one's window.
    let now = T0 + 100 + 49 * 60 + 30;
    let r = s.apply(&chain, now, "bundle").unwrap();
    assert_eq!((r.from_epoch, r.to_epoch, r.committed.len()), (0, 50, 50));
    drop(s);
    assert_eq!(open(&d).unwrap().state().epoch().get(), 50);
}

#[test]
fn an_expired_last_update_is_accepted_only_if_it_restricts() {
    let chain = common::long_chain(50, T0 + 100, 60);
    let late = T0 + 100 + 50 * 60 + 7200; // the last update expired an hour ago
    // Last op revokes (chain index 49 is odd): accepted.
    let d = ledger(0);
    let mut s = open(&d).unwrap();
    assert!(chain[49].update.ops.iter().all(Op::is_restrictive));
    let r = s.apply(&chain, late, "bundle").unwrap();
    assert_eq!(r.to_epoch, 50);
    // Last op adds (stop at index 48): rejected, nothing committed.
    let d = ledger(0);
    let before = files(&d);
    let mut s = open(&d).unwrap();
    let e = s.apply(&chain[..49], late, "bundle").unwrap_err();
    assert_eq!(e.rejection().map(Rejection::name), Some("Expired"), "{e}");
    assert_eq!(s.state().epoch().get(), 0);
    drop(s);
    assert_eq!(files(&d), before);
}

#[test]
fn a_byte_flipped_in_each_file_is_detected() {
    // genesis.json: refused outright.
    let d = ledger(3);
    flip(&d.path.join("genesis.json"), 200);
    assert!(matches!(
        open(&d),
        Err(StoreError::Decode { .. } | StoreError::Genesis(_))
    ));
    // genesis.pin: refused.
    let d = ledger(3);
    flip(&d.path.join("genesis.pin"), 20);
    assert!(
        matches!(
            open(&d),
            Err(StoreError::Genesis(Rejection::PinMismatch { .. }))
        ),
        "{:?}",
        open(&d).err()
    );
    // ledger.log: restricted, naming the line.
    let d = ledger(3);
    let log = d.path.join("ledger.log");
    let first = lines(&log)[0].len();
    flip(&log, first + 1 + 300);
    let before = files(&d);
    assert!(
        matches!(restriction(&d), Restriction::LogTampered { line: 2, .. }),
        "{:?}",
        restriction(&d)
    );
    assert_eq!(files(&d), before);
    // ledger.watermark: restricted.
    let d = ledger(3);
    flip(&d.path.join("ledger.watermark"), 120);
    assert!(
        matches!(restriction(&d), Restriction::WatermarkMismatch { .. }),
        "{:?}",
        restriction(&d)
    );
    // ledger.snapshot: a cache — rewritten from the log, and the repair audited.
    let d = ledger(3);
    let good = fs::read(d.path.join("ledger.snapshot")).unwrap();
    flip(&d.path.join("ledger.snapshot"), 400);
    let s = open(&d).unwrap();
    assert_eq!(*s.mode(), Mode::Trusted);
    assert_eq!(s.repairs(), [Repair::RewroteSnapshot]);
    assert_eq!(fs::read(d.path.join("ledger.snapshot")).unwrap(), good);
    // audit.log: an edited record breaks the chain at its successor.
    let d = ledger(3);
    flip(&d.path.join("audit.log"), 100);
    let s = open(&d).unwrap();
    assert_eq!(
        s.audit_status().broken.as_deref(),
        Some("audit.log line 2 does not verify")
    );
}

#[test]
fn truncated_cut_and_reordered_logs_are_restricted() {
    let d = ledger(3);
    let log = d.path.join("ledger.log");
    let l = lines(&log);
    write_lines(&log, &l[..2]);
    assert_eq!(
        restriction(&d),
        Restriction::Rollback {
            log_epoch: 2,
            watermark_epoch: 3
        }
    );

    let d = ledger(3);
    let log = d.path.join("ledger.log");
    let l = lines(&log);
    write_lines(&log, &[l[0].clone(), l[2].clone()]);
    assert!(matches!(
        restriction(&d),
        Restriction::LogTampered { line: 2, .. }
    ));

    let d = ledger(3);
    let log = d.path.join("ledger.log");
    let l = lines(&log);
    write_lines(&log, &[l[1].clone(), l[0].clone(), l[2].clone()]);
    assert!(matches!(
        restriction(&d),
        Restriction::LogTampered { line: 1, .. }
    ));
}

#[test]
fn an_older_copy_of_the_whole_directory_is_a_rollback() {
    let d = ledger(2);
    let old = d.path.with_file_name("old");
    copy_dir(&d.path, &old);
    let chain = common::chain();
    let mut s = open(&d).unwrap();
    s.apply(&chain.updates[2..4], T0 + 410, "t").unwrap();
    drop(s);
    fs::remove_dir_all(&d.path).unwrap();
    fs::rename(&old, &d.path).unwrap();
    // Self-consistent at epoch 2, but the mirror beside the directory saw epoch 4.
    assert_eq!(
        restriction(&d),
        Restriction::Rollback {
            log_epoch: 2,
            watermark_epoch: 4
        }
    );
    let mut s = open(&d).unwrap();
    let e = s.apply(&chain.updates[2..3], T0 + 310, "t").unwrap_err();
    assert!(
        matches!(e, StoreError::Restricted(Restriction::Rollback { .. })),
        "{e}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_missing_watermark_is_restricted_until_recovered() {
    let d = ledger(3);
    fs::remove_file(d.path.join("ledger.watermark")).unwrap();
    assert_eq!(restriction(&d), Restriction::MissingWatermark);
    let mut s = open(&d).unwrap();
    let e = s
        .apply(&common::chain().updates[3..4], T0 + 410, "t")
        .unwrap_err();
    assert!(matches!(
        e,
        StoreError::Restricted(Restriction::MissingWatermark)
    ));
    assert_eq!(s.recover(T0 + 500).unwrap(), Restriction::MissingWatermark);
    drop(s);
    let s = open(&d).unwrap();
    assert_eq!(*s.mode(), Mode::Trusted);
    assert_eq!(s.state().epoch().get(), 3);
    assert!(
        s.audit_records()
            .unwrap()
            .iter()
            .any(|r| r.event == AuditEvent::Recovered)
    );
}

#[test]
fn recovery_refuses_a_log_that_does_not_verify() {
    let d = ledger(3);
    let log = d.path.join("ledger.log");
    let l = lines(&log);
    write_lines(&log, &[l[0].clone(), l[2].clone()]);
    let mut s = open(&d).unwrap();
    assert!(matches!(
        s.recover(T0 + 500),
        Err(StoreError::Unrecoverable(_))
    ));
}

#[test]
fn unsafe_permissions_and_symlinks_are_refused() {
    let d = ledger(1);
    let snap = d.path.join("ledger.snapshot");
    fs::set_permissions(&snap, fs::Permissions::from_mode(0o644)).unwrap();
    let e = open(&d).err().unwrap();
    assert!(
        matches!(&e, StoreError::File(FileError::Unsafe { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("chmod 600"), "{e}");

    let d = ledger(1);
    fs::set_permissions(&d.path, fs::Permissions::from_mode(0o755)).unwrap();
    let e = open(&d).err().unwrap();
    assert!(e.to_string().contains("chmod 700"), "{e}");

    let d = ledger(1);
    let wm = d.path.join("ledger.watermark");
    let elsewhere = d.path.with_file_name("wm-elsewhere");
    fs::rename(&wm, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &wm).unwrap();
    let e = open(&d).err().unwrap();
    assert!(e.to_string().contains("symlink"), "{e}");
}

#[test]
#[ignore = "needs root (chown)"]
fn a_file_owned_by_another_user_is_refused() {
    let d = ledger(1);
    let log = d.path.join("ledger.log");
    std::os::unix::fs::chown(&log, Some(65534), Some(65534)).unwrap();
    let e = open(&d).err().unwrap();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
}

#[test]
fn the_watermark_mirror_sits_beside_the_directory() {
    let d = ledger(2);
    let m = mirror_path(&d.path);
    assert_eq!(m, d.path.with_file_name("state.watermark"));
    assert_eq!(
        fs::read(&m).unwrap(),
        fs::read(d.path.join("ledger.watermark")).unwrap()
    );
}

#[test]
fn a_bundle_from_another_network_is_refused_whole() {
    use rn::ledger::carried::{Bundle, BundleKind, Carried};
    let d = ledger(1);
    let mut state = serde_json::to_value(&common::genesis().genesis.state).unwrap();
    state["network_id"] = serde_json::json!("other");
    let other = common::signed_genesis(
        serde_json::from_value(state).unwrap(),
        &["alice", "bob", "carol"],
    );
    let bundle = Bundle {
        kind: BundleKind,
        genesis: Some(other.clone()),
        updates: common::chain().updates[1..2].to_vec(),
        policies: Vec::new(),
    };
    let carried = Carried::decode(&common::file_bytes(&bundle)).unwrap();
    let before = files(&d);
    let mut s = open(&d).unwrap();
    let e = s.apply_carried(&carried, T0 + 300, "bundle").unwrap_err();
    assert_eq!(
        e.rejection().map(Rejection::name),
        Some("PinMismatch"),
        "{e}"
    );
    drop(s);
    assert_eq!(files(&d), before);
}

#[test]
fn another_networks_update_for_a_committed_epoch_is_wrong_network_not_stale() {
    // The gate checks the network before any epoch (spec §4.5, check 1), also for epochs the
    // ledger has already committed.
    let d = ledger(2);
    let mut su = common::chain().updates[1].clone();
    su.update.network_id = "other".parse().unwrap();
    let before = files(&d);
    let mut s = open(&d).unwrap();
    let e = s.apply(&[su], T0 + 300, "test").unwrap_err();
    assert_eq!(
        e.rejection().map(Rejection::name),
        Some("WrongNetwork"),
        "{e}"
    );
    drop(s);
    assert_eq!(files(&d), before);
}

fn open_cached(d: &Dir, cache: Option<rn::ledger::store::StoreCache>) -> Store {
    Store::open_cached(&d.path, Some(&d.pin), T0 + 10_000, cache).unwrap()
}

#[test]
fn a_cached_open_verifies_only_appended_lines_and_sees_any_change_before_them() {
    let d = ledger(3);
    let cache = open(&d).unwrap().into_cache();
    assert!(cache.is_some(), "a trusted store leaves a cache");
    // Lines appended since: the cached open reaches the same state as a full one.
    let chain = common::chain();
    let mut s = open(&d).unwrap();
    for (i, su) in chain.updates.iter().enumerate().skip(3).take(4) {
        s.apply(
            std::slice::from_ref(su),
            T0 + 100 * (i as u64 + 1) + 10,
            "t",
        )
        .unwrap();
    }
    drop(s);
    let cached = open_cached(&d, cache);
    assert_eq!(*cached.mode(), Mode::Trusted);
    assert_eq!(cached.state().root(), chain.states[7].root());
    assert_eq!(cached.history().len(), 7);
    assert_eq!(cached.seen().len(), 7);

    // One byte changed inside the cached prefix: the cached open verifies everything again.
    let cache = cached.into_cache();
    flip(&d.path.join("ledger.log"), 40);
    assert!(matches!(
        open_cached(&d, cache).mode(),
        Mode::Restricted(Restriction::LogTampered { line: 1, .. })
    ));

    // A bad line appended after the cached prefix is named by its line number in the log.
    let d = ledger(3);
    let cache = open(&d).unwrap().into_cache();
    let log = d.path.join("ledger.log");
    let mut l = lines(&log);
    let mut bad = l[2].clone();
    bad[30] ^= 1;
    l.push(bad);
    write_lines(&log, &l);
    assert!(matches!(
        open_cached(&d, cache).mode(),
        Mode::Restricted(Restriction::LogTampered { line: 4, .. })
    ));

    // A restricted store leaves no cache.
    assert!(open(&d).unwrap().into_cache().is_none());

    // A byte changed inside the audit chain a cache read is seen by the cached open.
    let d = ledger(3);
    let cache = open(&d).unwrap().into_cache();
    flip(&d.path.join("audit.log"), 30);
    assert_eq!(
        open_cached(&d, cache).audit_status().broken.as_deref(),
        Some("audit.log line 1 does not verify")
    );
}

/// Appends golden update 2 to a ledger at epoch 1 as a correctly chained log line, as anyone
/// who can write the directory could — without committing it (the watermark stays at 1).
fn append_uncommitted_line(d: &Dir) {
    let log = d.path.join("ledger.log");
    let last = lines(&log).pop().unwrap();
    let su = &common::chain().updates[1];
    let entry = serde_json::json!({
        "kind": "rn.log-entry.v1",
        "index": 2,
        "prev": rn::ledger::types::Blake3Digest::of(&last).to_string(),
        "signed_update": su,
    });
    let mut all = lines(&log);
    all.push(rn::ledger::canonical::to_jcs(&entry));
    write_lines(&log, &all);
}

#[test]
fn a_line_beyond_the_watermark_is_finished_only_if_it_passes_the_gate_now() {
    // Within the update's validity: an interrupted commit, finished.
    let d = ledger(1);
    append_uncommitted_line(&d);
    let s = Store::open(&d.path, Some(&d.pin), T0 + 300).unwrap();
    assert_eq!(s.mode(), &Mode::Trusted);
    assert_eq!(s.state().epoch().get(), 2);
    assert_eq!(s.repairs(), [Repair::FinishedCommit { epoch: 2 }]);
    drop(s);

    // After it expired: dropped like a torn tail, audited, and the ledger stays at epoch 1.
    let d = ledger(1);
    let log_before = fs::read(d.path.join("ledger.log")).unwrap();
    append_uncommitted_line(&d);
    let s = open(&d).unwrap();
    assert_eq!(s.mode(), &Mode::Trusted);
    assert_eq!(s.state().epoch().get(), 1);
    let repair = match s.repairs() {
        [
            r @ Repair::DroppedBeyondWatermark {
                lines: 1,
                watermark_epoch: 1,
                epoch: 2,
                rejection,
            },
        ] if rejection.name() == "Expired" => r.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(
        repair.starts_with("dropped 1 line(s) of ledger.log beyond the watermark (epoch 1)"),
        "{repair}"
    );
    let audited = s.audit_records().unwrap();
    assert!(
        audited
            .iter()
            .any(|a| a.event == AuditEvent::Repaired && a.detail == *repair)
    );
    drop(s);
    assert_eq!(fs::read(d.path.join("ledger.log")).unwrap(), log_before);
    // Reopening finds nothing more to do, and the update can still not be committed late.
    let s = open(&d).unwrap();
    assert_eq!(s.state().epoch().get(), 1);
    assert!(s.repairs().is_empty(), "{:?}", s.repairs());
}

#[test]
fn the_audit_log_rotates_into_linked_segments() {
    let d = ledger(1);
    let chain = common::chain();
    // A stale update, again and again: each rejection appends one audit record.
    let stale = std::slice::from_ref(&chain.updates[0]);
    let mut forged = chain.updates[1].clone();
    forged.signatures.truncate(1);
    let mut s = open(&d).unwrap();
    s.set_audit_segment_bytes(2048);
    for _ in 0..40 {
        let e = s
            .apply(std::slice::from_ref(&forged), T0 + 300, "forged.json")
            .unwrap_err();
        assert_eq!(e.rejection().map(Rejection::name), Some("BelowThreshold"));
    }
    s.apply(stale, T0 + 300, "stale.json").unwrap();
    drop(s);
    let segments: Vec<_> = fs::read_dir(&d.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("audit.0"))
        .collect();
    assert!(segments.len() >= 5, "{segments:?}");
    assert!(fs::metadata(d.path.join("audit.log")).unwrap().len() <= 2048);

    // Opening reads only audit.log and the last line of the newest segment.
    let s = open(&d).unwrap();
    assert_eq!(s.mode(), &Mode::Trusted);
    assert!(s.audit_status().broken.is_none(), "{:?}", s.audit_status());
    let all = s.verify_audit().unwrap();
    assert_eq!(all.broken, None);
    assert_eq!(all.segments, segments.len());
    let records = s.audit_records().unwrap();
    assert_eq!(all.records, records.len());
    assert!(records.len() >= 42, "{}", records.len());
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.index.get(), i as u64 + 1);
    }
    drop(s);

    // A byte changed in an old segment breaks the whole-chain walk, naming the segment.
    let first = d.path.join("audit.000001.log");
    flip(&first, 10);
    let s = open(&d).unwrap();
    assert_eq!(s.mode(), &Mode::Trusted);
    let all = s.verify_audit().unwrap();
    assert!(
        all.broken
            .as_deref()
            .is_some_and(|b| b.starts_with("audit.000001.log line ")),
        "{all:?}"
    );
    drop(s);
    flip(&first, 10);

    // Archiving the oldest segment away: the walk starts at the oldest one present, and says so.
    fs::remove_file(&first).unwrap();
    let all = open(&d).unwrap().verify_audit().unwrap();
    assert_eq!(all.broken, None);
    assert!(all.starts_after.is_some_and(|k| k > 0), "{all:?}");
}

/// One gate entry judges a chain from an untrusted source against a ledger: committed updates
/// are skipped, the rest verified in order, and a refusal names its position in the input.
#[test]
fn one_gate_entry_judges_a_chain_against_the_ledger() {
    use rn::ledger::gate::judge_chain;
    let d = ledger(2);
    let chain = common::chain();
    let s = open(&d).unwrap();
    let now = chain.updates[2].update.created_at.get() + 10;
    let v = judge_chain(&s, &chain.updates[..3], now).unwrap();
    assert_eq!((v.already(), v.updates().len()), (2, 1));
    assert_eq!(
        v.updates()[0].0.update.update_id,
        chain.updates[2].update.update_id
    );
    // A forged signature after a committed update: refused at position 1.
    let mut forged = chain.updates[2].clone();
    forged.signatures[0].sig = forged.signatures[1].sig;
    let r = judge_chain(&s, &[chain.updates[1].clone(), forged], now).unwrap_err();
    assert_eq!((r.position, r.rejection.name()), (1, "BadSignature"));
    // A committed update after a new one: the chain is out of order.
    let r = judge_chain(
        &s,
        &[chain.updates[2].clone(), chain.updates[0].clone()],
        now,
    )
    .unwrap_err();
    assert_eq!((r.position, r.rejection.name()), (1, "Stale"));
    // Judging changed nothing on disk.
    drop(s);
    assert_eq!(open(&d).unwrap().state().epoch().get(), 2);
}

/// The proposal editor: base → ops → ttl → reason → build, refusing what the gate would.
#[test]
fn the_proposal_editor_builds_what_the_gate_accepts() {
    use rn::ledger::editor::{BuildError, ProposalBuilder};
    use rn::ledger::model::Set;
    let chain = common::chain();
    let base = chain.states[1].clone();
    let at = common::u(T0 + 1000);
    // A node added without an address gets the lowest free host of the overlay.
    let mut b = ProposalBuilder::new(base.clone(), at);
    let mut n = common::node("web-9", 1, &["tag:web"], T0 + 1000);
    n.addresses = Set::default();
    b.add_node_unaddressed(n);
    b.ttl(600).unwrap();
    b.reason("editor test".parse().unwrap());
    let p = b.build().unwrap();
    let rn::ledger::Op::AddNode { node } = &p.update.ops[0] else {
        panic!("not an add_node")
    };
    let taken: Vec<String> = base
        .nodes()
        .flat_map(|n| n.addresses.iter().map(|a| a.to_string()))
        .collect();
    assert!(!taken.contains(&node.addresses.iter().next().unwrap().to_string()));
    assert_eq!(p.update.expires_at.get(), T0 + 1600);
    let after = rn::ledger::gate::proposal_result(&p, T0 + 1000).unwrap();
    assert_eq!(after.root(), p.update.new_root);
    // A batch: relaxed add_node, strict everything else; a bad op is named by number.
    let mut b = ProposalBuilder::new(base.clone(), at);
    let key = common::node_key("db-9", 1);
    let batch = format!(
        r#"[{{"op":"add_node","node":{{"id":"db-9","owner":"alice@example.com","pubkey":"{key}"}}}},{{"op":"revoke_node","id":"nope","x":1}}]"#
    );
    match b.batch(batch.as_bytes()).unwrap_err() {
        BuildError::Batch { op: Some(2), error } => assert_eq!(error.name(), "Malformed"),
        other => panic!("{other:?}"),
    }
    // An op the reducer refuses is refused now, with its kind.
    let mut b = ProposalBuilder::new(base.clone(), at);
    b.op(rn::ledger::Op::RevokeNode {
        id: "nope".parse().unwrap(),
    });
    match b.build().unwrap_err() {
        BuildError::Rejected(Rejection::IllegalOp { kind, .. }) => {
            assert_eq!(kind, rn::ledger::IllegalOpKind::NotFound)
        }
        other => panic!("{other:?}"),
    }
    // A validity beyond the network's maximum, and no op at all.
    let mut b = ProposalBuilder::new(base.clone(), at);
    let invalid = |r: Result<(), BuildError>| match r {
        Err(BuildError::Invalid(msg)) => msg,
        other => panic!("{other:?}"),
    };
    let max = base.params().max_update_ttl_secs.get();
    assert!(invalid(b.ttl(0).map(|_| ())).contains(&format!("max_update_ttl of {max} s, not 0 s")),);
    assert!(invalid(b.ttl(max + 1).map(|_| ())).contains(&format!("not {} s", max + 1)));
    assert_eq!(
        invalid(b.build().map(|_| ())),
        "a proposal needs at least one op"
    );
}

#[test]
fn an_agents_snapshot_holds_what_publish_writes_whether_built_whole_or_by_appending() {
    use rn::sync::layout::{Snapshot, publish};
    let d = ledger(0);
    let mut appended = Snapshot::default();
    appended.refresh(&open(&d).unwrap());
    let chain = common::chain();
    for (i, su) in chain.updates.iter().enumerate() {
        let mut store = open(&d).unwrap();
        store
            .apply(
                std::slice::from_ref(su),
                T0 + 100 * (i as u64 + 1) + 10,
                "test",
            )
            .unwrap();
        appended.refresh(&store);
    }
    let store = open(&d).unwrap();
    let mut whole = Snapshot::default();
    whole.refresh(&store);
    let out = tempfile::tempdir().unwrap();
    let published = publish(&store, out.path()).unwrap();
    assert!(published.written > 2, "{published:?}");
    let mut files = 0;
    let mut stack = vec![out.path().to_owned()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p
                .strip_prefix(out.path())
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let bytes = fs::read(&p).unwrap();
            assert_eq!(appended.get(&rel), Some(&bytes[..]), "{rel} (appended)");
            assert_eq!(whole.get(&rel), Some(&bytes[..]), "{rel} (whole)");
            files += 1;
        }
    }
    assert_eq!(files, published.written + published.unchanged);
    // Another history (a ledger behind this one) is taken whole: nothing of the longer one stays.
    let behind = ledger(1);
    appended.refresh(&open(&behind).unwrap());
    let last = store.state().epoch().get();
    assert!(appended.get(&format!("rn/v1/log/{last}")).is_none());
    assert_eq!(appended.head().map(|h| h.epoch.get()), Some(1));
}
