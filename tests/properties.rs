//! Property tests of the ledger core.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{T0, approver_key, approver_key2, node_key, sign, u, update_on};
use proptest::prelude::*;
use rn::ledger::canonical::{decode, to_jcs};
use rn::ledger::model::{Approver, ApproverStatus, Node, NodeStatus, Params, Role, Set, State};
use rn::ledger::reduce::reduce;
use rn::ledger::types::{Cidr, Id};
use rn::ledger::update::{Op, SignedUpdate};
use rn::ledger::{Freshness, accept};
use serde_json::Value;

fn id(s: &str) -> Id {
    s.parse().unwrap()
}

const NODES: [&str; 5] = ["n0", "n1", "n2", "n3", "n4"];
const APPROVERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

fn addr(i: u8) -> Cidr {
    format!("100.96.0.{i}/32").parse().unwrap()
}

fn arb_set<T: Ord + Clone + std::fmt::Debug + 'static>(
    items: Vec<T>,
) -> impl Strategy<Value = Set<T>> + Clone {
    proptest::sample::subsequence(items.clone(), 0..=items.len().min(3))
        .prop_map(|v| Set::new(v).unwrap())
}

fn arb_op() -> impl Strategy<Value = Op> {
    let node_id = proptest::sample::select(NODES.to_vec()).prop_map(id);
    let approver_id = proptest::sample::select(APPROVERS.to_vec()).prop_map(id);
    let tags = arb_set(vec!["tag:a".parse().unwrap(), "tag:b".parse().unwrap()]);
    let addrs = arb_set((1..6).map(addr).collect());
    let routes = arb_set(vec![
        "10.0.0.0/8".parse().unwrap(),
        "100.96.0.0/24".parse::<Cidr>().unwrap(),
        "192.168.1.0/24".parse().unwrap(),
    ]);
    prop_oneof![
        (
            node_id.clone(),
            0u32..3,
            tags.clone(),
            addrs.clone(),
            routes.clone(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(id, g, tags, addresses, routes, exit, wrong_time)| Op::AddNode {
                    node: Node {
                        pubkey: node_key(id.as_str(), g),
                        id,
                        owner: "ops".parse().unwrap(),
                        status: NodeStatus::Active,
                        tags,
                        addresses,
                        routes,
                        exit,
                        joined_at: u(T0 + 100 - u64::from(wrong_time)),
                        updated_at: u(T0 + 100),
                    },
                }
            ),
        node_id.clone().prop_map(|id| Op::RemoveNode { id }),
        node_id.clone().prop_map(|id| Op::RevokeNode { id }),
        node_id.clone().prop_map(|id| Op::QuarantineNode { id }),
        node_id.clone().prop_map(|id| Op::RestoreNode { id }),
        (node_id.clone(), 0u32..3).prop_map(|(id, g)| Op::RotateNodeKey {
            pubkey: node_key(id.as_str(), g),
            id
        }),
        (
            node_id,
            proptest::option::of(tags),
            proptest::option::of(addrs),
            proptest::option::of(routes),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(id, tags, addresses, routes, exit)| Op::SetNode {
                id,
                tags,
                addresses,
                routes,
                exit
            }),
        (approver_id.clone(), any::<bool>(), any::<bool>()).prop_map(|(id, owner, second)| {
            Op::AddApprover {
                approver: Approver {
                    pubkey: if second {
                        approver_key2(id.as_str())
                    } else {
                        approver_key(id.as_str())
                    }
                    .public(),
                    id,
                    role: if owner { Role::Owner } else { Role::Guardian },
                    status: ApproverStatus::Active,
                    previous_keys: Default::default(),
                },
            }
        }),
        approver_id.clone().prop_map(|id| Op::RevokeApprover { id }),
        (approver_id, any::<bool>()).prop_map(|(id, second)| Op::RotateApproverKey {
            pubkey: if second {
                approver_key2(id.as_str())
            } else {
                approver_key(id.as_str())
            }
            .public(),
            id,
        }),
        (0u64..6).prop_map(|t| Op::SetThreshold { threshold: u(t) }),
        (60u64..100, 0u64..700).prop_map(|(ttl, skew)| Op::SetParams {
            params: Params {
                max_update_ttl_secs: u(ttl * 3600),
                clock_skew_secs: u(skew),
                ..common::params()
            },
        }),
    ]
}

fn genesis_state() -> State {
    common::genesis().genesis.state
}

/// Re-encodes `v` with object keys in a permuted order and random whitespace.
fn scramble(v: &Value, seed: &mut u64, out: &mut String) {
    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }
    const WS: [&str; 5] = [" ", "\n", "\t", "", "  "];
    out.push_str(WS[(next(seed) % 5) as usize]);
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            let by = next(seed) as usize % keys.len().max(1);
            keys.rotate_left(by);
            if next(seed).is_multiple_of(2) {
                keys.reverse();
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(WS[(next(seed) % 5) as usize]);
                out.push(':');
                scramble(&m[*k], seed, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                scramble(x, seed, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
    out.push_str(WS[(next(seed) % 5) as usize]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random op sequences never panic the reducer; every accepted result meets every
    /// invariant (it re-validates from its own bytes) and its incrementally computed root
    /// equals the root recomputed from scratch.
    #[test]
    fn reducer_preserves_invariants(batches in proptest::collection::vec(proptest::collection::vec(arb_op(), 1..3), 1..12)) {
        let mut state = genesis_state();
        for (i, ops) in batches.into_iter().enumerate() {
            let upd = update_on(&state, 1000 + i as u64, T0 + 100, ops);
            if let Ok(t) = reduce(&state, &upd) {
                let next = state.preview(&t);
                let again: State = serde_json::from_slice(&to_jcs(&next)).expect("accepted states meet every invariant");
                prop_assert_eq!(again.root(), next.root());
                prop_assert!(next.threshold().get() >= 1);
                prop_assert!(next.threshold().get() as usize <= next.active_approvers());
                prop_assert!(next.approvers().any(|a| a.is_active_owner()));
                state = next;
            }
        }
    }

    /// Flipping any bit of any byte of a valid signed update gets it rejected (at decoding
    /// or at the gate).
    #[test]
    fn any_flipped_byte_is_rejected(pos in any::<proptest::sample::Index>(), bit in 0u8..8) {
        let base = genesis_state();
        let op = Op::AddNode { node: common::node("web-1", 1, &["tag:web"], T0 + 100) };
        let su = sign(update_on(&base, 1, T0 + 100, vec![op]), &["alice", "bob"]);
        let mut bytes = to_jcs(&su);
        prop_assert!(accept(&base, &HashSet::new(), &su, T0 + 110, Freshness::Lone).is_ok());
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(flipped) = decode::<SignedUpdate>(&bytes) {
            prop_assert!(accept(&base, &HashSet::new(), &flipped, T0 + 110, Freshness::Lone).is_err(),
                "flip at {} accepted: {}", i, String::from_utf8_lossy(&bytes));
        }
    }

    /// The root does not depend on key order or whitespace in the input.
    #[test]
    fn root_ignores_key_order_and_whitespace(seed in 1u64..u64::MAX) {
        let chain_state = common::chain().states[2].clone();
        let v = serde_json::to_value(&chain_state).unwrap();
        let mut text = String::new();
        let mut s = seed;
        scramble(&v, &mut s, &mut text);
        let back: State = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back.root(), chain_state.root());
    }

    /// Records and set entries out of their written order are refused, never re-sorted: the
    /// list read is the list hashed and signed.
    #[test]
    fn records_out_of_order_are_refused(rot in 1usize..5, list in 0usize..3) {
        let chain_state = common::chain().states[2].clone();
        let mut v = serde_json::to_value(&chain_state).unwrap();
        let a = match list {
            0 => v["approvers"].as_array_mut().unwrap(),
            1 => v["nodes"].as_array_mut().unwrap(),
            _ => v["nodes"][0]["tags"].as_array_mut().unwrap(),
        };
        prop_assume!(a.len() > 1);
        let len = a.len();
        a.rotate_left(1 + rot % (len - 1));
        let err = serde_json::from_value::<State>(v).unwrap_err().to_string();
        prop_assert!(err.contains("out of order"), "{}", err);
    }
}

#[test]
fn duplicate_records_are_refused_not_merged() {
    let s = genesis_state();
    let mut v = serde_json::to_value(&s).unwrap();
    let first = v["approvers"][0].clone();
    v["approvers"].as_array_mut().unwrap().insert(1, first);
    let err = serde_json::from_value::<State>(v).unwrap_err().to_string();
    assert!(err.contains("duplicate entry alice"), "{err}");
}

fn big_state(n: u32) -> State {
    let mut s = genesis_state();
    let mut ops = Vec::new();
    for i in 0..n {
        let mut x = common::node(&format!("m{:03}", i * 2), 0, &[], T0 + 100);
        x.addresses = Set::new(vec![
            format!("100.96.{}.{}/32", 1 + i / 200, 1 + i % 200)
                .parse()
                .unwrap(),
        ])
        .unwrap();
        ops.push(Op::AddNode { node: x });
    }
    let t = reduce(&s, &update_on(&s, 7, T0 + 100, ops)).unwrap();
    s = s.preview(&t);
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// On states large enough to use the hasher checkpoints, a chain of random add, remove and
    /// revoke updates yields, at every step, the root recomputed from scratch.
    #[test]
    fn checkpointed_node_digest_matches_a_full_recompute(
        steps in proptest::collection::vec(proptest::collection::vec((0u32..400, 0u8..3), 1..6), 1..6)
    ) {
        let mut state = big_state(200);
        for (k, step) in steps.into_iter().enumerate() {
            let mut ops = Vec::new();
            let mut touched = HashSet::new();
            for (i, kind) in step {
                let name = format!("m{i:03}");
                if !touched.insert(name.clone()) {
                    continue;
                }
                let exists = state.node(&id(&name)).is_some();
                ops.push(match (kind, exists) {
                    (0, false) => {
                        let mut x = common::node(&name, 0, &[], T0 + 200);
                        x.addresses = Set::new(vec![format!("100.96.9.{}/32", i % 250 + 1).parse().unwrap()]).unwrap();
                        x.pubkey = node_key(&name, 7);
                        Op::AddNode { node: x }
                    }
                    (1, true) => Op::RemoveNode { id: id(&name) },
                    (_, true) => Op::SetNode { id: id(&name), tags: Some(Set::new(vec!["tag:x".parse().unwrap()]).unwrap()), addresses: None, routes: None, exit: None },
                    _ => continue,
                });
            }
            if ops.is_empty() {
                continue;
            }
            let upd = update_on(&state, 500 + k as u64, T0 + 200, ops);
            if let Ok(t) = reduce(&state, &upd) {
                let next = state.preview(&t);
                let again: State = serde_json::from_slice(&to_jcs(&next)).unwrap();
                prop_assert_eq!(again.root(), next.root());
                state = next;
            }
        }
    }
}
