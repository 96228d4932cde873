//! Gate cost against its floor: `accept` (verify + reduce + root) for a 2-of-3 single-op update
//! versus the two `verify_strict` calls alone, on states of 10, 1,000, 10,000 and 100,000 nodes.
//! Run with `make bench`. Prints ratios (these machines are noisy; absolute times are
//! for orientation only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod report;

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{T0, approver, params, sign, u, update_on};
use rn::ledger::canonical::{decode, to_jcs};
use rn::ledger::model::{Role, State};
use rn::ledger::update::{Op, SignedUpdate};
use rn::ledger::{Freshness, accept};

fn state_with(nodes: u32) -> State {
    let mut p = params();
    p.overlay_v4 = Some("100.64.0.0/10".parse().unwrap());
    State::new(
        "acme".parse().unwrap(),
        u(41),
        p,
        u(2),
        vec![
            approver("alice", Role::Owner),
            approver("bob", Role::Owner),
            approver("carol", Role::Guardian),
        ],
        (0..nodes).map(|i| common::fleet_node(i, T0)).collect(),
        None,
    )
    .unwrap()
}

/// Median of `rounds` timings of `iters` calls, per call.
fn per_call(rounds: usize, iters: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed() / iters
        })
        .collect();
    samples.sort();
    samples[rounds / 2]
}

fn main() {
    println!("SHA-256: {}", report::sha256());
    println!(
        "{:<34} {:>12} {:>12} {:>7} {:>7}",
        "gate, 2-of-3 single-op update", "gate", "2x verify", "ratio", "target"
    );
    for (nodes, target) in [
        (10u32, 1.25),
        (1_000, 1.25),
        (10_000, 1.25),
        (100_000, 1.25),
    ] {
        let state = state_with(nodes);
        let victim = format!("node-{:05}", nodes / 2);
        let su = sign(
            update_on(
                &state,
                1,
                T0 + 100,
                vec![Op::RevokeNode {
                    id: victim.parse().unwrap(),
                }],
            ),
            &["alice", "bob"],
        );
        let seen = HashSet::new();
        let now = T0 + 200;
        assert!(accept(&state, &seen, &su, now, Freshness::ChainLast).is_ok());
        let msg = su.update.message();
        let keys: Vec<_> = ["alice", "bob"]
            .iter()
            .map(|id| {
                *state
                    .approver(&id.parse().unwrap())
                    .unwrap()
                    .pubkey
                    .verifying_key()
            })
            .collect();
        let sigs: Vec<_> = su.signatures.iter().map(|s| s.sig.to_dalek()).collect();
        let bytes = to_jcs(&su);
        let iters = 200;
        let mut gate = Duration::MAX;
        let mut decode_gate = Duration::MAX;
        let mut verify = Duration::MAX;
        // Interleave the measurements so drift in machine load hits both alike.
        for _ in 0..5 {
            verify = verify.min(per_call(5, iters, || {
                for (k, s) in keys.iter().zip(&sigs) {
                    black_box(k.verify_strict(black_box(&msg), s)).unwrap();
                }
            }));
            gate = gate.min(per_call(5, iters, || {
                black_box(accept(
                    &state,
                    &seen,
                    black_box(&su),
                    now,
                    Freshness::ChainLast,
                ))
                .unwrap();
            }));
            decode_gate = decode_gate.min(per_call(5, iters, || {
                let d: SignedUpdate = decode(black_box(&bytes)).unwrap();
                black_box(accept(&state, &seen, &d, now, Freshness::ChainLast)).unwrap();
            }));
        }
        let ratio = gate.as_secs_f64() / verify.as_secs_f64();
        let ratio_d = decode_gate.as_secs_f64() / verify.as_secs_f64();
        let meets = if ratio <= target { "meets" } else { "MISSES" };
        println!(
            "{:<34} {:>10.1}us {:>10.1}us {:>7.3} {:>7} {meets}",
            format!("{nodes} nodes"),
            gate.as_secs_f64() * 1e6,
            verify.as_secs_f64() * 1e6,
            ratio,
            format!("<= {target}")
        );
        report::row(
            &format!(
                "gate, 2-of-3 single-op update, {} nodes (vs 2x verify_strict)",
                match nodes {
                    1_000 => "1,000".to_owned(),
                    10_000 => "10,000".to_owned(),
                    100_000 => "100,000".to_owned(),
                    n => n.to_string(),
                }
            ),
            "µs",
            gate.as_secs_f64() * 1e6,
            Some(verify.as_secs_f64() * 1e6),
            target,
        );
        println!(
            "{:<34} {:>10.1}us {:>10.1}us {:>7.3}",
            format!("{nodes} nodes, decoding included"),
            decode_gate.as_secs_f64() * 1e6,
            verify.as_secs_f64() * 1e6,
            ratio_d
        );
    }
    breakdown();
}

/// Where the gate spends its time beyond the two signatures, at 1,000 nodes; and what the node
/// tree costs for a change in place and for an added node, at 1,000 to 100,000 nodes.
fn breakdown() {
    let state = state_with(1_000);
    let victim: rn::ledger::types::Id = "node-00500".parse().unwrap();
    let su = sign(
        update_on(
            &state,
            1,
            T0 + 100,
            vec![Op::RevokeNode { id: victim.clone() }],
        ),
        &["alice", "bob"],
    );
    let n = state.node(&victim).unwrap().clone();
    println!("\nbeyond the signatures, 1,000 nodes (revoking the middle node):");
    let t = |name: &str, f: &mut dyn FnMut()| {
        let d = per_call(5, 2000, &mut *f);
        println!("  {name:<52} {:>9.2}us", d.as_secs_f64() * 1e6);
    };
    t("reduce (ops, invariants, new root)", &mut || {
        black_box(rn::ledger::reduce::reduce(&state, &su.update)).unwrap();
    });
    t(
        "  of which JCS + SHA-256 of the changed record",
        &mut || {
            black_box(rn::ledger::root::leaf(&n));
        },
    );
    t("  of which JCS + SHA-256 of the header", &mut || {
        black_box(rn::ledger::types::Sha256Digest::of(&state.header_bytes()));
    });
    t("JCS(update): the signed message", &mut || {
        black_box(su.update.message());
    });
    println!("\nthe node tree's new root (reduce of one op):");
    for nodes in [1_000u32, 10_000, 100_000] {
        let state = state_with(nodes);
        let mid = format!("node-{:05}", nodes / 2);
        let revoke = update_on(
            &state,
            2,
            T0 + 100,
            vec![Op::RevokeNode {
                id: mid.parse().unwrap(),
            }],
        );
        // A new id sorting just after the middle node: every later leaf moves by one.
        let mut added = common::fleet_node(nodes + 1, T0 + 100);
        added.id = format!("{mid}-a").parse().unwrap();
        let add_mid = update_on(
            &state,
            3,
            T0 + 100,
            vec![Op::AddNode {
                node: added.clone(),
            }],
        );
        added.id = "zz-last".parse().unwrap();
        let add_last = update_on(&state, 4, T0 + 100, vec![Op::AddNode { node: added }]);
        let iters = if nodes >= 100_000 { 20 } else { 200 };
        for (what, u) in [
            ("revoke the middle node", &revoke),
            ("add a node in the middle", &add_mid),
            ("add a node after the last", &add_last),
        ] {
            let d = per_call(5, iters, || {
                black_box(rn::ledger::reduce::reduce(&state, u)).unwrap();
            });
            println!(
                "  {:<52} {:>9.2}us",
                format!("{nodes} nodes, {what}"),
                d.as_secs_f64() * 1e6
            );
        }
    }
}
