//! Deterministic networks for the golden vectors, the reject vectors, property tests and
//! benchmarks: keys from fixed seeds, fixed times and fixed update ids.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use rn::keys::ApproverSecret;
use rn::ledger::canonical::to_jcs;
use rn::ledger::model::{Approver, ApproverStatus, Node, NodeStatus, Params, Role, Set, State};
use rn::ledger::reduce::reduce;
use rn::ledger::types::{Sha256Digest, TransportKey, Uint, UpdateId};
use rn::ledger::update::{
    Genesis, GenesisKind, Op, Signature, SignedGenesis, SignedGenesisKind, SignedUpdate,
    SignedUpdateKind, Update, UpdateKind, insert_signature,
};
use rn::ledger::{Freshness, accept, verify_genesis};

/// Genesis time of every fixture network (2025-11-27 07:53:20 UTC).
pub const T0: u64 = 1_764_230_000;

fn sha(label: &str) -> [u8; 32] {
    Sha256Digest::of(label.as_bytes()).0
}

/// The approver key of `id`: seed = SHA-256("rn golden approver " + id).
pub fn approver_key(id: &str) -> ApproverSecret {
    ApproverSecret::from_seed(&sha(&format!("rn golden approver {id}")))
}

/// A second key for `id` (rotations): seed = SHA-256("rn golden approver " + id + " 2").
pub fn approver_key2(id: &str) -> ApproverSecret {
    ApproverSecret::from_seed(&sha(&format!("rn golden approver {id} 2")))
}

/// The transport key of a node: X25519 public key of the clamped scalar
/// SHA-256("rn golden node " + id + " " + generation).
pub fn node_key(id: &str, generation: u32) -> TransportKey {
    let secret =
        x25519_dalek::StaticSecret::from(sha(&format!("rn golden node {id} {generation}")));
    TransportKey::from_bytes(x25519_dalek::PublicKey::from(&secret).to_bytes()).unwrap()
}

/// Node `i` of a benchmark fleet: `node-{i:05}`, `tag:fleet`, address 100.64.0.0/10 + i + 1.
#[allow(dead_code)]
pub fn fleet_node(i: u32, at: u64) -> Node {
    let mut n = node(&format!("node-{i:05}"), 0, &["tag:fleet"], at);
    n.addresses = Set::new(vec![
        format!(
            "{}/32",
            std::net::Ipv4Addr::from((100u32 << 24 | 64 << 16) + i + 1)
        )
        .parse()
        .unwrap(),
    ])
    .unwrap();
    n
}

/// A benchmark network `acme` on 100.64.0.0/10 holding `nodes`: alice and bob owners, carol
/// guardian, threshold 2, at epoch 0.
#[allow(dead_code)]
pub fn fleet_state(nodes: Vec<Node>) -> State {
    let mut p = params();
    p.overlay_v4 = Some("100.64.0.0/10".parse().unwrap());
    State::new(
        "acme".parse().unwrap(),
        u(0),
        p,
        u(2),
        vec![
            approver("alice", Role::Owner),
            approver("bob", Role::Owner),
            approver("carol", Role::Guardian),
        ],
        nodes,
        None,
    )
    .unwrap()
}

/// The private half of [`node_key`] (for agents that must hold the ledger's key).
#[allow(dead_code)]
pub fn node_secret(id: &str, generation: u32) -> rn::keys::NodeSecret {
    rn::keys::NodeSecret::from_bytes(sha(&format!("rn golden node {id} {generation}")))
}

/// `update_id` n: the first 16 bytes of SHA-256("rn golden update " + n).
pub fn update_id(n: u64) -> UpdateId {
    let h = sha(&format!("rn golden update {n}"));
    UpdateId::from_bytes(h[..16].try_into().unwrap())
}

pub fn u(v: u64) -> Uint {
    Uint::new(v).unwrap()
}

pub fn approver(id: &str, role: Role) -> Approver {
    Approver {
        id: id.parse().unwrap(),
        pubkey: approver_key(id).public(),
        role,
        status: ApproverStatus::Active,
        previous_keys: Default::default(),
    }
}

pub fn params() -> Params {
    Params {
        overlay_v4: Some("100.96.0.0/16".parse().unwrap()),
        overlay_v6: None,
        max_update_ttl_secs: u(604_800),
        clock_skew_secs: u(90),
    }
}

/// A node record as `add_node` carries it at time `at`.
pub fn node(id: &str, host: u32, tags: &[&str], at: u64) -> Node {
    let a = 100u32 << 24 | 96 << 16 | host;
    let addr = std::net::Ipv4Addr::from(a);
    Node {
        id: id.parse().unwrap(),
        pubkey: node_key(id, 1),
        owner: "alice@example.com".parse().unwrap(),
        status: NodeStatus::Active,
        tags: Set::new(tags.iter().map(|t| t.parse().unwrap()).collect()).unwrap(),
        addresses: Set::new(vec![format!("{addr}/32").parse().unwrap()]).unwrap(),
        routes: Set::default(),
        exit: false,
        joined_at: u(at),
        updated_at: u(at),
    }
}

/// A genesis for `state` created at `T0`, signed by the named approvers' first keys.
pub fn signed_genesis(state: State, signers: &[&str]) -> SignedGenesis {
    let genesis = Genesis {
        kind: GenesisKind,
        state,
        created_at: u(T0),
    };
    let msg = genesis.message();
    let mut signatures = Vec::new();
    for id in signers {
        insert_signature(
            &mut signatures,
            Signature {
                approver: id.parse().unwrap(),
                sig: approver_key(id).sign(&msg),
                new_key: false,
            },
        );
    }
    SignedGenesis {
        kind: SignedGenesisKind,
        genesis,
        signatures,
    }
}

/// The genesis of network "acme": alice and bob owners, carol guardian, threshold 2.
pub fn genesis() -> SignedGenesis {
    let state = State::new(
        "acme".parse().unwrap(),
        Uint::ZERO,
        params(),
        u(2),
        vec![
            approver("alice", Role::Owner),
            approver("bob", Role::Owner),
            approver("carol", Role::Guardian),
        ],
        Vec::new(),
        None,
    )
    .unwrap();
    signed_genesis(state, &["alice", "bob", "carol"])
}

/// An unsigned update on `state` with the given ops, created at `at`, valid one hour,
/// with `new_root` computed by the reducer (or zero if the ops are illegal).
pub fn update_on(state: &State, n: u64, at: u64, ops: Vec<Op>) -> Update {
    let mut upd = Update {
        kind: UpdateKind,
        network_id: state.network_id().clone(),
        update_id: update_id(n),
        epoch_prev: state.epoch(),
        epoch_new: state.epoch().next().unwrap(),
        prev_root: state.root(),
        new_root: Sha256Digest([0; 32]),
        created_at: u(at),
        expires_at: u(at + 3600),
        reason: format!("golden update {n}").parse().unwrap(),
        ops,
    };
    if let Ok(t) = reduce(state, &upd) {
        upd.new_root = t.root();
    }
    upd
}

/// Signs `update` with the named approvers: `ID` with its first key, `k2:ID` with its second
/// (rotated) key, `new:ID` with its second key as a proof of possession.
pub fn sign(update: Update, signers: &[&str]) -> SignedUpdate {
    let msg = update.message();
    let mut signatures = Vec::new();
    for s in signers {
        let (id, key, new_key) = if let Some(id) = s.strip_prefix("new:") {
            (id, approver_key2(id), true)
        } else if let Some(id) = s.strip_prefix("k2:") {
            (id, approver_key2(id), false)
        } else {
            (*s, approver_key(s), false)
        };
        insert_signature(
            &mut signatures,
            Signature {
                approver: id.parse().unwrap(),
                sig: key.sign(&msg),
                new_key,
            },
        );
    }
    SignedUpdate {
        kind: SignedUpdateKind,
        update,
        signatures,
    }
}

/// The golden chain: every op of spec §4.4 at least once.
pub struct Chain {
    pub genesis: SignedGenesis,
    pub updates: Vec<SignedUpdate>,
    /// `states[e]` is the state at epoch e.
    pub states: Vec<State>,
}

/// The policy document hash the chain pins (any 32 bytes would do for the ledger).
pub fn policy_hash() -> Sha256Digest {
    Sha256Digest::of(br#"{"kind":"rn.policy.v1","rules":[]}"#)
}

pub fn chain() -> Chain {
    let genesis = genesis();
    let g = verify_genesis(&genesis, None).unwrap();
    let mut states = vec![g.state().clone()];
    let mut updates = Vec::new();
    type Ops = Box<dyn Fn(u64) -> Vec<Op>>;
    let steps: Vec<(Vec<&str>, Ops)> = vec![
        (
            vec!["alice", "bob"],
            Box::new(|at| {
                vec![
                    Op::AddNode {
                        node: node("web-1", 1, &["tag:web"], at),
                    },
                    Op::AddNode {
                        node: node("web-2", 2, &["tag:web"], at),
                    },
                    Op::AddNode {
                        node: node("db-1", 3, &["tag:db"], at),
                    },
                ]
            }),
        ),
        (
            vec!["bob", "carol"],
            Box::new(|_| {
                vec![
                    Op::SetNode {
                        id: "web-1".parse().unwrap(),
                        tags: Some(
                            Set::new(vec![
                                "tag:web".parse().unwrap(),
                                "tag:edge".parse().unwrap(),
                            ])
                            .unwrap(),
                        ),
                        addresses: None,
                        routes: Some(Set::new(vec!["10.20.0.0/16".parse().unwrap()]).unwrap()),
                        exit: Some(true),
                    },
                    Op::RotateNodeKey {
                        id: "web-2".parse().unwrap(),
                        pubkey: node_key("web-2", 2),
                    },
                ]
            }),
        ),
        (
            vec!["alice", "carol"],
            Box::new(|_| {
                vec![
                    Op::QuarantineNode {
                        id: "db-1".parse().unwrap(),
                    },
                    Op::RestoreNode {
                        id: "db-1".parse().unwrap(),
                    },
                    Op::RevokeNode {
                        id: "web-2".parse().unwrap(),
                    },
                ]
            }),
        ),
        (
            vec!["alice", "bob"],
            Box::new(|_| {
                vec![Op::RemoveNode {
                    id: "web-2".parse().unwrap(),
                }]
            }),
        ),
        (
            vec!["alice", "bob", "new:dave", "new:carol"],
            Box::new(|_| {
                vec![
                    Op::AddApprover {
                        approver: Approver {
                            id: "dave".parse().unwrap(),
                            pubkey: approver_key2("dave").public(),
                            role: Role::Guardian,
                            status: ApproverStatus::Active,
                            previous_keys: Default::default(),
                        },
                    },
                    Op::RotateApproverKey {
                        id: "carol".parse().unwrap(),
                        pubkey: approver_key2("carol").public(),
                    },
                ]
            }),
        ),
        (
            vec!["alice", "bob"],
            Box::new(|_| {
                vec![
                    Op::RevokeApprover {
                        id: "dave".parse().unwrap(),
                    },
                    Op::SetThreshold { threshold: u(3) },
                ]
            }),
        ),
        (
            vec!["alice", "bob", "k2:carol"],
            Box::new(|_| {
                let mut p = params();
                p.max_update_ttl_secs = u(86_400);
                p.overlay_v6 = Some("fd7a:115c:a1e0::/48".parse().unwrap());
                vec![
                    Op::SetParams { params: p },
                    Op::SetPolicy {
                        policy: Some(policy_hash()),
                    },
                ]
            }),
        ),
    ];
    for (i, (signers, ops)) in steps.into_iter().enumerate() {
        let n = i as u64 + 1;
        let mut state = states.last().unwrap().clone();
        let at = T0 + 100 * n;
        let signed = sign(update_on(&state, n, at, ops(at)), &signers);
        accept(&state, &HashSet::new(), &signed, at, Freshness::Lone)
            .unwrap_or_else(|err| panic!("golden update {n} rejected: {err}"))
            .commit_to(&mut state);
        states.push(state);
        updates.push(signed);
    }
    Chain {
        genesis,
        updates,
        states,
    }
}

/// Canonical bytes plus a newline, as files hold them.
pub fn file_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut b = to_jcs(v);
    b.push(b'\n');
    b
}

/// A chain of `n` updates on the golden genesis, alternately adding a node and revoking it,
/// created `step` seconds apart from `start`, signed by alice and bob.
pub fn long_chain(n: usize, start: u64, step: u64) -> Vec<SignedUpdate> {
    let g = genesis();
    let mut state = g.genesis.state.clone();
    let mut out = Vec::new();
    for i in 0..n {
        let at = start + i as u64 * step;
        let ops = if i % 2 == 0 {
            let mut x = node(&format!("n{i}"), 10 + i as u32, &["tag:fleet"], at);
            x.pubkey = node_key(&format!("n{i}"), 1);
            vec![Op::AddNode { node: x }]
        } else {
            vec![Op::RevokeNode {
                id: format!("n{}", i - 1).parse().unwrap(),
            }]
        };
        let su = sign(
            update_on(&state, 2000 + i as u64, at, ops),
            &["alice", "bob"],
        );
        let t = reduce(&state, &su.update).unwrap();
        state = state.preview(&t);
        out.push(su);
    }
    out
}
