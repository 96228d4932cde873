//! The node tree (spec §4): the root a state keeps up to date change by change equals the
//! root computed from scratch over its records, after any sequence of ops on 1 to 10,000
//! nodes; and inclusion proofs hold for their root and nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use common::{T0, fleet_node, fleet_state, update_on};
use proptest::prelude::*;
use rn::ledger::canonical::{decode, to_jcs};
use rn::ledger::model::{Node, NodeStatus, Set, State};
use rn::ledger::proof::{NodeProof, ProofError};
use rn::ledger::reduce::reduce;
use rn::ledger::root::digest_records;
use rn::ledger::types::{Id, Sha256Digest, Uint};
use rn::ledger::update::Op;

/// Nodes 0 to 9,999 of the benchmark fleet, built once (each needs an X25519 key).
fn fleet() -> &'static [Node] {
    static FLEET: OnceLock<Vec<Node>> = OnceLock::new();
    FLEET.get_or_init(|| (0..10_000).map(|i| fleet_node(i, T0)).collect())
}

/// The node digest computed from scratch: RFC 9162's recursion over every record's leaf.
fn scratch_nodes_digest(s: &State) -> serde_json::Value {
    serde_json::to_value(digest_records(s.node_leaves().map(|(_, l)| l))).unwrap()
}

fn header(s: &State) -> serde_json::Value {
    serde_json::from_slice(&s.header_bytes()).unwrap()
}

/// One op, chosen by `kind` and placed by `seed` among the state's current nodes; `None` when
/// the state has no node it applies to.
fn op(s: &State, kind: u8, seed: usize, fresh: &mut u32, at: u64) -> Option<Op> {
    let pick = |want: &dyn Fn(&Node) -> bool| {
        let cands: Vec<&Node> = s.nodes().filter(|n| want(n)).collect();
        (!cands.is_empty()).then(|| cands[seed % cands.len()].id.clone())
    };
    Some(match kind % 7 {
        0 | 1 => {
            // A new id before, between or after the existing ones.
            *fresh += 1;
            let mut n = fleet_node(20_000 + *fresh, at);
            n.id = match kind % 3 {
                0 => format!("a-{}", *fresh),
                1 => format!("node-{:05}-{}", seed % 10_000, *fresh),
                _ => format!("z-{}", *fresh),
            }
            .parse()
            .unwrap();
            Op::AddNode { node: n }
        }
        2 => Op::RemoveNode {
            id: pick(&|_| true)?,
        },
        3 => Op::RevokeNode {
            id: pick(&|n| n.status != NodeStatus::Revoked)?,
        },
        4 => Op::QuarantineNode {
            id: pick(&|n| n.status == NodeStatus::Active)?,
        },
        5 => Op::RestoreNode {
            id: pick(&|n| n.status != NodeStatus::Active)?,
        },
        _ => Op::SetNode {
            id: pick(&|_| true)?,
            tags: Some(Set::new(vec![format!("tag:t{}", seed % 5).parse().unwrap()]).unwrap()),
            addresses: None,
            routes: None,
            exit: Some(seed.is_multiple_of(2)),
        },
    })
}

/// The node an op is about.
fn target(o: &Op) -> Option<&Id> {
    match o {
        Op::AddNode { node } => Some(&node.id),
        Op::RemoveNode { id }
        | Op::RevokeNode { id }
        | Op::QuarantineNode { id }
        | Op::RestoreNode { id }
        | Op::SetNode { id, .. } => Some(id),
        _ => None,
    }
}

fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=40, 41usize..=2_000, 9_990usize..=10_000]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn incremental_root_equals_the_root_from_scratch(
        n in sizes(),
        updates in proptest::collection::vec(
            proptest::collection::vec((any::<u8>(), any::<usize>()), 1..5), 1..12),
    ) {
        let mut state = fleet_state(fleet()[..n].to_vec());
        let mut fresh = 0;
        for (i, ops) in updates.iter().enumerate() {
            let at = T0 + 10 * (i as u64 + 1);
            let mut list = Vec::new();
            for (kind, seed) in ops {
                // One op per node per update keeps the ops legal together.
                if let Some(o) = op(&state, *kind, *seed, &mut fresh, at)
                    && !list.iter().any(|l| target(l) == target(&o))
                {
                    list.push(o);
                }
            }
            if list.is_empty() {
                continue;
            }
            let update = update_on(&state, i as u64, at, list);
            let Ok(t) = reduce(&state, &update) else { continue };
            // `preview` applies the change to the kept tree and checks it against the
            // transition's root, computed without touching the tree.
            state = state.preview(&t);
            prop_assert_eq!(&header(&state)["nodes"], &scratch_nodes_digest(&state));
        }
        // The whole state, decoded afresh, has the same root.
        let rebuilt: State = serde_json::from_slice(&to_jcs(&state)).unwrap();
        prop_assert_eq!(rebuilt.root(), state.root());
    }
}

#[test]
fn proofs_hold_for_their_root_only() {
    let state = fleet_state(fleet()[..13].to_vec());
    let root = state.root();
    for node in state.nodes() {
        let proof = NodeProof::of(&state, &node.id).unwrap();
        assert_eq!(proof.header.root(), root);
        let again: NodeProof = decode(&to_jcs(&proof)).unwrap();
        assert_eq!(again.verify(&root), Ok(()));
        assert!(matches!(
            again.verify(&Sha256Digest([7; 32])),
            Err(ProofError::OtherRoot { .. })
        ));
    }
    let good = NodeProof::of(&state, &"node-00005".parse().unwrap()).unwrap();
    assert_eq!(good.path.len(), 4, "13 leaves: a path of 4 hashes");
    // A changed record, index, path or header does not verify.
    let mut p = good.clone();
    p.node.exit = !p.node.exit;
    assert!(matches!(
        p.verify(&root),
        Err(ProofError::PathMismatch { .. })
    ));
    let mut p = good.clone();
    p.index = Uint::new(6).unwrap();
    assert!(matches!(
        p.verify(&root),
        Err(ProofError::PathMismatch { .. })
    ));
    let mut p = good.clone();
    p.path.pop();
    assert!(matches!(
        p.verify(&root),
        Err(ProofError::PathMismatch { .. })
    ));
    let mut p = good.clone();
    p.path.swap(0, 1);
    assert!(matches!(
        p.verify(&root),
        Err(ProofError::PathMismatch { .. })
    ));
    let mut p = good.clone();
    p.header.nodes.count += 1;
    assert!(matches!(
        p.verify(&root),
        Err(ProofError::HeaderMismatch { .. })
    ));
    assert!(NodeProof::of(&state, &"absent".parse().unwrap()).is_none());
}

#[test]
fn a_proof_from_a_large_state_is_short() {
    let state = fleet_state(fleet().to_vec());
    let proof = NodeProof::of(&state, &"node-04321".parse().unwrap()).unwrap();
    assert_eq!(proof.path.len(), 14, "10,000 leaves: 14 levels");
    assert_eq!(proof.verify(&state.root()), Ok(()));
    assert_eq!(proof.index.get(), 4321);
}
