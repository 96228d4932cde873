//! Load time of a ledger of 10,000 updates on a 1,000-node network (`Store::open`: every log
//! line decoded, checked canonical, chained and run through the gate) against verifying its
//! 20,000 signatures alone. Run with `make bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod report;

use std::hint::black_box;
use std::time::Instant;

use common::{T0, sign, update_on};
use rn::ledger::canonical::{decode_canonical, to_jcs};
use rn::ledger::gate::verify_genesis;
use rn::ledger::log::LogEntry;
use rn::ledger::reduce::reduce;
use rn::ledger::store::Store;
use rn::ledger::update::{Op, SignedGenesis};

const NODES: u32 = 1_000;
const UPDATES: usize = 10_000;
/// The load on 2 cores against its signatures alone on 1 core.
const TARGET: f64 = 0.75;

fn genesis() -> SignedGenesis {
    let nodes = (0..NODES).map(|i| common::fleet_node(i, T0)).collect();
    common::signed_genesis(common::fleet_state(nodes), &["alice", "bob", "carol"])
}

fn main() {
    println!("SHA-256: {}", report::sha256());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let g = genesis();
    let pin = g.genesis.state.root();
    let t = Instant::now();
    let mut state = verify_genesis(&g, Some(&pin)).unwrap().state().clone();
    let mut chain = Vec::with_capacity(UPDATES);
    for i in 0..UPDATES {
        let id = format!("node-{:05}", (i / 2 * 7919) % NODES as usize);
        let op = if i % 2 == 0 {
            Op::QuarantineNode {
                id: id.parse().unwrap(),
            }
        } else {
            Op::RestoreNode {
                id: id.parse().unwrap(),
            }
        };
        let at = T0 + 100 + i as u64;
        let su = sign(
            update_on(&state, 10_000 + i as u64, at, vec![op]),
            &["alice", "bob"],
        );
        state = state.preview(&reduce(&state, &su.update).unwrap());
        chain.push(su);
    }
    let mut store = Store::bootstrap(&dir, &common::file_bytes(&g), &pin, T0).unwrap();
    store
        .apply(&chain, T0 + 100 + UPDATES as u64, "bench")
        .unwrap();
    drop(store);
    eprintln!(
        "built a {UPDATES}-update ledger on {NODES} nodes in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let log_size = std::fs::metadata(dir.join("ledger.log")).unwrap().len();

    // Reference: the signatures alone, keys parsed and messages encoded in advance.
    let keys: Vec<_> = ["alice", "bob"]
        .iter()
        .map(|id| {
            *g.genesis
                .state
                .approver(&id.parse().unwrap())
                .unwrap()
                .pubkey
                .verifying_key()
        })
        .collect();
    let work: Vec<(Vec<u8>, Vec<ed25519_dalek::Signature>)> = chain
        .iter()
        .map(|su| {
            (
                su.update.message(),
                su.signatures.iter().map(|s| s.sig.to_dalek()).collect(),
            )
        })
        .collect();
    let mut best_sigs = f64::MAX;
    let mut best_open = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        for (msg, sigs) in &work {
            for (k, s) in keys.iter().zip(sigs) {
                black_box(k.verify_strict(msg, s)).unwrap();
            }
        }
        best_sigs = best_sigs.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let s = Store::open(&dir, Some(&pin), T0 + 200_000).unwrap();
        assert_eq!(s.state().epoch().get(), UPDATES as u64);
        best_open = best_open.min(t.elapsed().as_secs_f64());
        drop(s);
    }
    println!(
        "load of {UPDATES} updates on {NODES} nodes ({:.1} MiB log)",
        log_size as f64 / 1048576.0
    );
    println!("  Store::open (full verification)   {:>8.3} s", best_open);
    println!("  20,000 verify_strict alone         {:>8.3} s", best_sigs);
    println!(
        "  ratio                              {:>8.3}   target <= {TARGET} {}",
        best_open / best_sigs,
        if best_open / best_sigs <= TARGET {
            "meets"
        } else {
            "MISSES"
        }
    );
    report::row(
        "load of a 10,000-update ledger, 1,000 nodes, 2 cores (vs its 20,000 verify_strict, 1 core)",
        "s",
        best_open,
        Some(best_sigs),
        TARGET,
    );
    per_line(&std::fs::read(dir.join("ledger.log")).unwrap());
}

/// What a log line costs beyond its signatures, on one core: the strict parse, the one
/// canonical encoding left (the line's own check), and the encoding of the update that taking
/// the signed message from the line's bytes saves.
fn per_line(log: &[u8]) {
    let lines: Vec<&[u8]> = log
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let entries: Vec<LogEntry> = lines.iter().map(|l| decode_canonical(l).unwrap()).collect();
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e6 / lines.len() as f64
    };
    let parse_and_check = time(&mut || {
        for l in &lines {
            black_box(decode_canonical::<LogEntry>(black_box(l))).unwrap();
        }
    });
    let line_jcs = time(&mut || {
        for e in &entries {
            black_box(to_jcs(black_box(e)));
        }
    });
    let update_jcs = time(&mut || {
        for e in &entries {
            black_box(e.signed_update.update.message());
        }
    });
    let hash = time(&mut || {
        for l in &lines {
            black_box(rn::ledger::types::Blake3Digest::of(l));
        }
    });
    println!("per log line, one core ({} lines):", lines.len());
    println!("  strict parse + canonical check     {parse_and_check:>8.2} us");
    println!("    of which serde_jcs of the line   {line_jcs:>8.2} us (the only encoding left)");
    println!("  serde_jcs of the update (saved)    {update_jcs:>8.2} us");
    println!("  BLAKE3 of the line                 {hash:>8.2} us");
}
