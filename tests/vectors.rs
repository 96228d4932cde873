//! Negative (and a few positive-control) vectors: one file per case under
//! `tests/vectors/reject/` and `tests/vectors/accept/`, each naming the exact outcome.
//!
//! A vector file holds: `comment`, `expect` (a `DecodeError`/`Rejection` variant name, or
//! `Accepted`), `base_epoch` (the golden `state-NN.json` it is judged against), `now`,
//! `freshness` (`lone`, `chain_inner`, `chain_last`, `history`), `seen` (update ids already
//! committed) and `input` (the exact bytes of the signed update, as a string).
//!
//! `RN_BLESS=1 cargo test --test vectors` rewrites the files from the generator below.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use common::{T0, approver_key, approver_key2, node, node_key, sign, u, update_on};
use rn::ledger::canonical::{decode, to_jcs};
use rn::ledger::model::{Approver, ApproverStatus, Role, Set, State};
use rn::ledger::types::{Sha256Digest, UpdateId};
use rn::ledger::update::{Op, Signature, SignedUpdate};
use rn::ledger::{Freshness, IllegalOpKind, Rejection, accept};
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    comment: &'static str,
    expect: &'static str,
    base_epoch: usize,
    now: u64,
    freshness: &'static str,
    seen: Vec<String>,
    input: Vec<u8>,
    /// For `IllegalOp`: the kind (`IllegalOpKind::name`).
    illegal_op: Option<&'static str>,
}

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Re-encodes a signed update after editing its JSON.
fn edit(su: &SignedUpdate, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = serde_json::to_value(su).unwrap();
    f(&mut v);
    to_jcs(&v)
}

fn id(s: &str) -> rn::ledger::types::Id {
    s.parse().unwrap()
}

fn approver(name: &str, role: Role, second_key: bool) -> Approver {
    Approver {
        id: id(name),
        pubkey: if second_key {
            approver_key2(name)
        } else {
            approver_key(name)
        }
        .public(),
        role,
        status: ApproverStatus::Active,
        previous_keys: Default::default(),
    }
}

/// Field order of the derived decoders, which is what an array-for-object spelling follows.
const UPDATE_FIELDS: &[&str] = &[
    "kind",
    "network_id",
    "update_id",
    "epoch_prev",
    "epoch_new",
    "prev_root",
    "new_root",
    "created_at",
    "expires_at",
    "reason",
    "ops",
];
const NODE_FIELDS: &[&str] = &[
    "id",
    "pubkey",
    "owner",
    "status",
    "tags",
    "addresses",
    "routes",
    "exit",
    "joined_at",
    "updated_at",
];

/// An object written as the array of its fields' values in `order`.
fn as_array(v: &Value, order: &[&str]) -> Value {
    Value::Array(order.iter().map(|k| v[*k].clone()).collect())
}

fn cases() -> Vec<Case> {
    let chain = common::chain();
    let s = &chain.states;
    let mut out = Vec::new();
    // Time of the next update on epoch e's state, and a "now" inside its validity.
    let at = |e: usize| T0 + 100 * (e as u64 + 1) + 5000;
    let mut case = |name, comment, expect, base_epoch: usize, freshness, input: Vec<u8>| {
        out.push(Case {
            name,
            comment,
            expect,
            base_epoch,
            now: at(base_epoch) + 10,
            freshness,
            seen: Vec::new(),
            input,
            illegal_op: None,
        });
    };
    let n = 100; // update ids for vectors: 100 + k
    let revoke = |who: &str| vec![Op::RevokeNode { id: id(who) }];
    let add = |name: &str, host: u32, e: usize| {
        vec![Op::AddNode {
            node: node(name, host, &["tag:web"], at(e)),
        }]
    };
    let good = |e: usize, k: u64, ops: Vec<Op>, signers: &[&str]| {
        sign(update_on(&s[e], n + k, at(e), ops), signers)
    };

    // --- decoding (spec §4.1) ---
    let base = good(1, 1, revoke("web-2"), &["alice", "bob"]);
    case(
        "unknown_kind",
        "The signed-update kind names an unknown version.",
        "UnknownKind",
        1,
        "lone",
        edit(&base, |v| v["kind"] = json!("rn.signed-update.v2")),
    );
    case(
        "unknown_inner_kind",
        "The inner update kind names an unknown version.",
        "UnknownKind",
        1,
        "lone",
        edit(&base, |v| v["update"]["kind"] = json!("rn.update.v2")),
    );
    case(
        "unknown_field",
        "An unknown field in the update.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| v["update"]["priority"] = json!(1)),
    );
    let dup = String::from_utf8(to_jcs(&base)).unwrap().replacen(
        "\"reason\":",
        "\"reason\":\"x\",\"reason\":",
        1,
    );
    case(
        "duplicate_key",
        "The key \"reason\" appears twice.",
        "Malformed",
        1,
        "lone",
        dup.into_bytes(),
    );
    case(
        "integer_above_2_53",
        "created_at is 2^53, which JCS cannot carry exactly.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| {
            v["update"]["created_at"] = json!(9_007_199_254_740_992u64)
        }),
    );
    case(
        "negative_integer",
        "epoch_prev is negative.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| v["update"]["epoch_prev"] = json!(-1)),
    );
    case(
        "float_number",
        "created_at is a float.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| v["update"]["created_at"] = json!(1.5)),
    );
    case(
        "empty_ops",
        "An update with no ops.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| v["update"]["ops"] = json!([])),
    );
    case(
        "missing_field",
        "expires_at is missing.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| {
            v["update"].as_object_mut().unwrap().remove("expires_at");
        }),
    );
    case(
        "unknown_op",
        "An op name rn does not know.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| {
            v["update"]["ops"][0]["op"] = json!("frobnicate_node")
        }),
    );
    case(
        "bad_node_id",
        "A node id that is not a lowercase DNS label.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| v["update"]["ops"][0]["id"] = json!("Web_2")),
    );
    case(
        "reason_control_character",
        "A control character in the reason.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| v["update"]["reason"] = json!("line\nbreak")),
    );
    case(
        "non_canonical_signature_base64",
        "A signature whose base64 has non-zero trailing bits.",
        "Malformed",
        1,
        "lone",
        edit(&base, |v| {
            let sig = v["signatures"][0]["sig"].as_str().unwrap().to_owned();
            let mut b = sig.into_bytes();
            // The last character before "==" carries 2 data bits and 4 padding bits: keep the
            // data bits, set a padding bit. Same bytes, second spelling.
            const ALPHABET: &[u8] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let i = b.len() - 3;
            let v6 = ALPHABET.iter().position(|&c| c == b[i]).unwrap();
            b[i] = ALPHABET[(v6 & 0x30) | 1];
            v["signatures"][0]["sig"] = json!(String::from_utf8(b).unwrap());
        }),
    );
    case(
        "non_canonical_cidr",
        "An address with host bits beyond its prefix length.",
        "Malformed",
        1,
        "lone",
        edit(&good(1, 2, add("web-3", 4, 1), &["alice", "bob"]), |v| {
            v["update"]["ops"][0]["node"]["addresses"] = json!(["100.96.0.4/16"])
        }),
    );
    let weak = good(
        0,
        3,
        vec![Op::AddApprover {
            approver: approver("erin", Role::Guardian, false),
        }],
        &["alice", "bob", "new:erin"],
    );
    case(
        "weak_approver_key",
        "add_approver with the identity point as its key (a weak key).",
        "Malformed",
        0,
        "lone",
        edit(&weak, |v| {
            v["update"]["ops"][0]["approver"]["pubkey"] =
                json!("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        }),
    );
    case(
        "approver_key_second_spelling",
        "add_approver with a key whose y coordinate is written as y + p (same point, second spelling).",
        "Malformed",
        0,
        "lone",
        edit(&weak, |v| {
            v["update"]["ops"][0]["approver"]["pubkey"] =
                json!("8P///////////////////////////////////////38=")
        }),
    );

    // --- shapes: each of these re-encodes to the signed bytes, so only the shape check
    // (spec §4.1) stands between it and a commit that another reader would see differently ---
    let added = good(1, 5, add("web-3", 4, 1), &["alice", "bob"]);
    case(
        "op_as_array",
        "An add_node op written as an array of its tag and fields.",
        "Malformed",
        1,
        "lone",
        edit(&added, |v| {
            let op = v["update"]["ops"][0].clone();
            v["update"]["ops"][0] = json!(["add_node", op["node"]]);
        }),
    );
    case(
        "update_as_array",
        "The whole update written as an array of its fields in declaration order.",
        "Malformed",
        1,
        "lone",
        edit(&added, |v| {
            v["update"] = as_array(&v["update"], UPDATE_FIELDS)
        }),
    );
    case(
        "signed_update_as_array",
        "The signed update itself written as an array of its fields.",
        "Malformed",
        1,
        "lone",
        edit(&added, |v| {
            *v = as_array(v, &["kind", "update", "signatures"])
        }),
    );
    case(
        "signature_as_array",
        "A signature entry written as [approver, sig].",
        "Malformed",
        1,
        "lone",
        edit(&added, |v| {
            v["signatures"][0] = as_array(&v["signatures"][0], &["approver", "sig"])
        }),
    );
    case(
        "node_record_as_array",
        "The node record of an add_node written as an array of its fields.",
        "Malformed",
        1,
        "lone",
        edit(&added, |v| {
            v["update"]["ops"][0]["node"] = as_array(&v["update"]["ops"][0]["node"], NODE_FIELDS)
        }),
    );
    case(
        "status_as_map",
        "A node status written {\"active\":null} instead of \"active\".",
        "Malformed",
        1,
        "lone",
        edit(&added, |v| {
            v["update"]["ops"][0]["node"]["status"] = json!({"active": null})
        }),
    );
    case(
        "explicit_new_key_false",
        "A signature entry with \"new_key\": false, which the normal form leaves out.",
        "Malformed",
        1,
        "lone",
        edit(&added, |v| v["signatures"][0]["new_key"] = json!(false)),
    );
    let tagged = good(
        1,
        6,
        vec![Op::AddNode {
            node: node("web-3", 4, &["tag:a", "tag:b"], at(1)),
        }],
        &["alice", "bob"],
    );
    case(
        "set_out_of_order",
        "A node's tags written out of their sorted order.",
        "Malformed",
        1,
        "lone",
        edit(&tagged, |v| {
            v["update"]["ops"][0]["node"]["tags"] = json!(["tag:b", "tag:a"])
        }),
    );
    let erin = good(
        0,
        7,
        vec![Op::AddApprover {
            approver: approver("erin", Role::Guardian, true),
        }],
        &["alice", "bob", "new:erin"],
    );
    case(
        "role_as_map",
        "An add_approver's role written {\"guardian\":null} instead of \"guardian\".",
        "Malformed",
        0,
        "lone",
        edit(&erin, |v| {
            v["update"]["ops"][0]["approver"]["role"] = json!({"guardian": null})
        }),
    );
    case(
        "approver_status_as_map",
        "An add_approver's status written {\"active\":null} instead of \"active\".",
        "Malformed",
        0,
        "lone",
        edit(&erin, |v| {
            v["update"]["ops"][0]["approver"]["status"] = json!({"active": null})
        }),
    );

    // --- gate steps 1-5 ---
    case(
        "wrong_network",
        "The update names another network.",
        "WrongNetwork",
        1,
        "lone",
        to_jcs(&{
            let mut x = update_on(&s[1], n + 4, at(1), revoke("web-2"));
            x.network_id = id("other");
            sign(x, &["alice", "bob"])
        }),
    );
    case(
        "stale",
        "Built on epoch 0 while the ledger is at epoch 1.",
        "Stale",
        1,
        "lone",
        to_jcs(&good(0, 5, add("web-9", 9, 0), &["alice", "bob"])),
    );
    case(
        "gap",
        "Built on epoch 1 while the ledger is at epoch 0.",
        "Gap",
        0,
        "lone",
        to_jcs(&good(1, 6, revoke("web-2"), &["alice", "bob"])),
    );
    case(
        "epoch_step",
        "epoch_new skips an epoch.",
        "EpochStep",
        1,
        "lone",
        to_jcs(&{
            let mut x = update_on(&s[1], n + 7, at(1), revoke("web-2"));
            x.epoch_new = u(3);
            sign(x, &["alice", "bob"])
        }),
    );
    // A quorum signed an update on another epoch-1 state: conflicting history.
    let other_s1 = {
        let mut st = s[0].clone();
        let v = accept(
            &st,
            &HashSet::new(),
            &good(0, 8, add("evil-1", 66, 0), &["alice", "bob"]),
            at(0),
            Freshness::Lone,
        )
        .unwrap();
        v.commit_to(&mut st);
        st
    };
    case(
        "fork",
        "A quorum-signed update building on a different epoch-1 root: fork evidence.",
        "Fork",
        1,
        "lone",
        to_jcs(&sign(
            update_on(
                &other_s1,
                n + 9,
                at(1),
                vec![Op::RevokeNode { id: id("evil-1") }],
            ),
            &["alice", "bob"],
        )),
    );
    case(
        "wrong_prev_root",
        "prev_root is not the ledger's root, and no quorum signed it.",
        "PrevRootMismatch",
        1,
        "lone",
        to_jcs(&{
            let mut x = update_on(&s[1], n + 10, at(1), revoke("web-2"));
            x.prev_root = Sha256Digest::of(b"elsewhere");
            sign(x, &["alice"])
        }),
    );
    let replay = good(1, 11, revoke("web-2"), &["alice", "bob"]);
    case(
        "replayed",
        "The update id was already committed to this ledger.",
        "Replay",
        1,
        "lone",
        to_jcs(&replay),
    );
    case(
        "future_dated",
        "created_at is 91 s ahead of now (skew 90 s).",
        "FutureDated",
        1,
        "lone",
        to_jcs(&{
            let mut x = update_on(&s[1], n + 12, at(1) + 10 + 91, revoke("web-2"));
            x.expires_at = u(at(1) + 4000);
            sign(x, &["alice", "bob"])
        }),
    );
    case(
        "bad_validity",
        "expires_at equals created_at.",
        "BadValidity",
        1,
        "lone",
        to_jcs(&{
            let mut x = update_on(&s[1], n + 13, at(1), revoke("web-2"));
            x.expires_at = x.created_at;
            sign(x, &["alice", "bob"])
        }),
    );
    case(
        "ttl_too_long",
        "Valid for 7 days and 1 second (max 7 days).",
        "TtlTooLong",
        1,
        "lone",
        to_jcs(&{
            let mut x = update_on(&s[1], n + 14, at(1), revoke("web-2"));
            x.expires_at = u(at(1) + 604_801);
            sign(x, &["alice", "bob"])
        }),
    );
    let expired = |k: u64, ops: Vec<Op>| {
        let mut x = update_on(&s[1], n + k, at(1) - 7200, ops);
        x.expires_at = u(at(1) - 3600);
        sign(x, &["alice", "bob"])
    };
    case(
        "expired",
        "A lone update one hour past its expiry.",
        "Expired",
        1,
        "lone",
        to_jcs(&expired(
            15,
            vec![Op::AddNode {
                node: node("web-3", 4, &[], at(1) - 7200),
            }],
        )),
    );
    case(
        "expired_last_of_chain_grants",
        "The last update of a catch-up chain is expired and adds a node.",
        "Expired",
        1,
        "chain_last",
        to_jcs(&expired(
            16,
            vec![Op::SetNode {
                id: id("web-1"),
                tags: None,
                addresses: None,
                routes: None,
                exit: Some(true),
            }],
        )),
    );
    case(
        "expired_lone_revocation",
        "An expired revocation judged on its own (not catch-up).",
        "Expired",
        1,
        "lone",
        to_jcs(&expired(17, revoke("web-2"))),
    );

    // --- quorum (spec §4.5.1) ---
    let forged = {
        let mut x = good(1, 18, revoke("web-2"), &["alice", "bob"]);
        x.signatures[0].sig = approver_key("alice").sign(b"some other message");
        x
    };
    case(
        "forged_signature",
        "alice's signature is over another message.",
        "BadSignature",
        1,
        "lone",
        to_jcs(&forged),
    );
    case(
        "modified_after_signing",
        "The reason was edited after both signatures.",
        "BadSignature",
        1,
        "lone",
        edit(&good(1, 19, revoke("web-2"), &["alice", "bob"]), |v| {
            v["update"]["reason"] = json!("edited")
        }),
    );
    case(
        "under_threshold",
        "One signature where two are needed.",
        "BelowThreshold",
        1,
        "lone",
        to_jcs(&good(1, 20, revoke("web-2"), &["alice"])),
    );
    let duplicate = {
        let mut x = good(1, 21, revoke("web-2"), &["alice"]);
        x.signatures.push(x.signatures[0].clone());
        x
    };
    case(
        "duplicate_signer",
        "alice's signature twice, to reach the threshold alone.",
        "DuplicateSigner",
        1,
        "lone",
        to_jcs(&duplicate),
    );
    let unknown = {
        let mut x = good(1, 22, revoke("web-2"), &["alice", "bob"]);
        let msg = x.update.message();
        x.signatures.push(Signature {
            approver: id("mallory"),
            sig: approver_key("mallory").sign(&msg),
            new_key: false,
        });
        x
    };
    case(
        "unknown_signer",
        "A valid signature by someone who is not an approver.",
        "UnknownSigner",
        1,
        "lone",
        to_jcs(&unknown),
    );
    case(
        "revoked_signer",
        "dave was revoked at epoch 6 and still signs.",
        "RevokedSigner",
        6,
        "lone",
        to_jcs(&good(
            6,
            23,
            revoke("web-1"),
            &["alice", "bob", "k2:carol", "k2:dave"],
        )),
    );
    case(
        "missing_owner",
        "Two guardians raise the threshold: governance needs an owner.",
        "MissingOwner",
        5,
        "lone",
        to_jcs(&good(
            5,
            24,
            vec![Op::SetThreshold { threshold: u(3) }],
            &["k2:carol", "k2:dave"],
        )),
    );
    case(
        "missing_proof_of_possession",
        "add_approver without a signature by the new key.",
        "MissingProofOfPossession",
        0,
        "lone",
        to_jcs(&good(
            0,
            25,
            vec![Op::AddApprover {
                approver: approver("erin", Role::Guardian, true),
            }],
            &["alice", "bob"],
        )),
    );
    case(
        "unexpected_proof",
        "A new_key signature on an update that introduces no key.",
        "UnexpectedProof",
        1,
        "lone",
        to_jcs(&good(
            1,
            26,
            revoke("web-2"),
            &["alice", "bob", "new:carol"],
        )),
    );
    case(
        "old_key_after_rotation",
        "carol signs with the key rotated out at epoch 5.",
        "BadSignature",
        5,
        "lone",
        to_jcs(&good(5, 27, revoke("web-1"), &["alice", "carol"])),
    );

    // --- reducer and invariants (spec §4.2, §4.4) ---
    case(
        "add_existing_node",
        "add_node for an id that exists.",
        "IllegalOp",
        1,
        "lone",
        to_jcs(&good(1, 28, add("web-1", 9, 1), &["alice", "bob"])),
    );
    case(
        "revoke_twice",
        "revoke_node on a revoked node.",
        "IllegalOp",
        3,
        "lone",
        to_jcs(&good(3, 29, revoke("web-2"), &["alice", "bob"])),
    );
    case(
        "unknown_node",
        "revoke_node on an id that does not exist.",
        "IllegalOp",
        1,
        "lone",
        to_jcs(&good(1, 30, revoke("nope"), &["alice", "bob"])),
    );
    case(
        "quarantine_revoked",
        "quarantine_node needs an active node.",
        "IllegalOp",
        3,
        "lone",
        to_jcs(&good(
            3,
            31,
            vec![Op::QuarantineNode { id: id("web-2") }],
            &["alice", "bob"],
        )),
    );
    case(
        "restore_active",
        "restore_node on an active node.",
        "IllegalOp",
        1,
        "lone",
        to_jcs(&good(
            1,
            32,
            vec![Op::RestoreNode { id: id("web-1") }],
            &["alice", "bob"],
        )),
    );
    case(
        "add_node_wrong_time",
        "joined_at differs from the update's created_at.",
        "IllegalOp",
        1,
        "lone",
        to_jcs(&good(
            1,
            33,
            vec![Op::AddNode {
                node: node("web-3", 4, &[], at(1) - 1),
            }],
            &["alice", "bob"],
        )),
    );
    let mut short = common::params();
    short.max_update_ttl_secs = u(30);
    case(
        "params_out_of_range",
        "set_params with a 30 s max TTL (minimum 60 s).",
        "IllegalOp",
        1,
        "lone",
        to_jcs(&good(
            1,
            34,
            vec![Op::SetParams { params: short }],
            &["alice", "bob"],
        )),
    );
    case(
        "set_node_changes_nothing",
        "set_node naming web-1's current tags only.",
        "IllegalOp",
        1,
        "lone",
        to_jcs(&good(
            1,
            46,
            vec![Op::SetNode {
                id: id("web-1"),
                tags: Some(Set::new(vec!["tag:web".parse().unwrap()]).unwrap()),
                addresses: None,
                routes: None,
                exit: None,
            }],
            &["alice", "bob"],
        )),
    );
    case(
        "two_new_keys_for_one_approver",
        "add_approver erin then rotate_approver_key erin: one proof could only prove one key.",
        "IllegalOp",
        0,
        "lone",
        to_jcs(&good(
            0,
            47,
            vec![
                Op::AddApprover {
                    approver: approver("erin", Role::Guardian, true),
                },
                Op::RotateApproverKey {
                    id: id("erin"),
                    pubkey: approver_key("erin").public(),
                },
            ],
            &["alice", "bob", "new:erin"],
        )),
    );
    case(
        "threshold_above_active",
        "set_threshold 4 with 3 active approvers.",
        "QuorumUnreachable",
        1,
        "lone",
        to_jcs(&good(
            1,
            35,
            vec![Op::SetThreshold { threshold: u(4) }],
            &["alice", "bob"],
        )),
    );
    case(
        "revoke_every_owner",
        "Revoking both owners leaves no one to sign governance.",
        "QuorumUnreachable",
        1,
        "lone",
        to_jcs(&good(
            1,
            36,
            vec![
                Op::RevokeApprover { id: id("alice") },
                Op::RevokeApprover { id: id("bob") },
            ],
            &["alice", "bob"],
        )),
    );
    case(
        "address_conflict",
        "A new node takes web-1's address.",
        "InvariantViolated",
        1,
        "lone",
        to_jcs(&good(1, 37, add("web-3", 1, 1), &["alice", "bob"])),
    );
    case(
        "address_outside_overlay",
        "An address outside 100.96.0.0/16.",
        "InvariantViolated",
        1,
        "lone",
        to_jcs(&good(
            1,
            38,
            vec![Op::SetNode {
                id: id("web-1"),
                tags: None,
                addresses: Some(Set::new(vec!["10.0.0.1/32".parse().unwrap()]).unwrap()),
                routes: None,
                exit: None,
            }],
            &["alice", "bob"],
        )),
    );
    case(
        "duplicate_transport_key",
        "A new node reuses web-1's WireGuard key.",
        "InvariantViolated",
        1,
        "lone",
        to_jcs(&good(
            1,
            39,
            vec![Op::AddNode {
                node: {
                    let mut x = node("web-3", 4, &[], at(1));
                    x.pubkey = node_key("web-1", 1);
                    x
                },
            }],
            &["alice", "bob"],
        )),
    );
    case(
        "route_overlaps_overlay",
        "A route inside the overlay range.",
        "InvariantViolated",
        1,
        "lone",
        to_jcs(&good(
            1,
            40,
            vec![Op::SetNode {
                id: id("web-1"),
                tags: None,
                addresses: None,
                routes: Some(Set::new(vec!["100.96.0.0/24".parse().unwrap()]).unwrap()),
                exit: None,
            }],
            &["alice", "bob"],
        )),
    );
    case(
        "approver_key_reused",
        "A new approver with bob's key.",
        "InvariantViolated",
        0,
        "lone",
        to_jcs(&{
            let a = Approver {
                pubkey: approver_key("bob").public(),
                ..approver("erin", Role::Guardian, false)
            };
            let x = update_on(&s[0], n + 41, at(0), vec![Op::AddApprover { approver: a }]);
            let mut su = sign(x, &["alice", "bob"]);
            let msg = su.update.message();
            rn::ledger::update::insert_signature(
                &mut su.signatures,
                Signature {
                    approver: id("erin"),
                    sig: approver_key("bob").sign(&msg),
                    new_key: true,
                },
            );
            su
        }),
    );
    // A key is never reused (spec §3.5): carol's first key, retired by update 5, and dave's
    // key, whose approver update 6 revoked.
    let with_proof = |mut su: SignedUpdate, who: &str, key: rn::keys::ApproverSecret| {
        let msg = su.update.message();
        rn::ledger::update::insert_signature(
            &mut su.signatures,
            Signature {
                approver: id(who),
                sig: key.sign(&msg),
                new_key: true,
            },
        );
        to_jcs(&su)
    };
    let reuse = |e: usize, k: u64, op: Op, signers: &[&str]| {
        sign(update_on(&s[e], n + k, at(e), vec![op]), signers)
    };
    case(
        "retired_key_rotated_back",
        "rotate_approver_key gives carol back the key update 5 retired.",
        "InvariantViolated",
        5,
        "lone",
        with_proof(
            reuse(
                5,
                60,
                Op::RotateApproverKey {
                    id: id("carol"),
                    pubkey: approver_key("carol").public(),
                },
                &["alice", "bob"],
            ),
            "carol",
            approver_key("carol"),
        ),
    );
    case(
        "retired_key_given_to_new_approver",
        "add_approver gives erin carol's retired key.",
        "InvariantViolated",
        5,
        "lone",
        with_proof(
            reuse(
                5,
                61,
                Op::AddApprover {
                    approver: Approver {
                        pubkey: approver_key("carol").public(),
                        ..approver("erin", Role::Guardian, false)
                    },
                },
                &["alice", "bob"],
            ),
            "erin",
            approver_key("carol"),
        ),
    );
    case(
        "revoked_approver_key_reused",
        "add_approver gives erin the key of dave, a revoked approver.",
        "InvariantViolated",
        7,
        "lone",
        with_proof(
            reuse(
                7,
                62,
                Op::AddApprover {
                    approver: Approver {
                        pubkey: approver_key2("dave").public(),
                        ..approver("erin", Role::Guardian, false)
                    },
                },
                &["alice", "bob", "k2:carol"],
            ),
            "erin",
            approver_key2("dave"),
        ),
    );
    case(
        "new_approver_with_previous_keys",
        "add_approver with a record that already lists previous keys.",
        "IllegalOp",
        5,
        "lone",
        to_jcs(&reuse(
            5,
            63,
            Op::AddApprover {
                approver: Approver {
                    previous_keys: rn::ledger::model::Set::new(vec![approver_key("erin").public()])
                        .unwrap(),
                    ..approver("erin", Role::Guardian, true)
                },
            },
            &["alice", "bob", "new:erin"],
        )),
    );
    case(
        "wrong_new_root",
        "new_root does not match what the ops yield.",
        "RootMismatch",
        1,
        "lone",
        to_jcs(&{
            let mut x = update_on(&s[1], n + 42, at(1), revoke("web-2"));
            x.new_root = Sha256Digest::of(b"wrong");
            sign(x, &["alice", "bob"])
        }),
    );

    // --- positive controls (tests/vectors/accept/) ---
    case(
        "expired_revocation_catch_up",
        "An expired revocation as the last update of a catch-up chain is still applied (spec §4.7).",
        "Accepted",
        1,
        "chain_last",
        to_jcs(&expired(43, revoke("web-2"))),
    );
    case(
        "expired_inner_update",
        "An expired update inside a catch-up chain is vouched for by its successor.",
        "Accepted",
        1,
        "chain_inner",
        to_jcs(&expired(
            44,
            vec![Op::AddNode {
                node: node("web-3", 4, &[], at(1) - 7200),
            }],
        )),
    );
    case(
        "history_ignores_clock",
        "Committed history is replayed without clock checks.",
        "Accepted",
        1,
        "history",
        to_jcs(&expired(
            45,
            vec![Op::AddNode {
                node: node("web-3", 4, &[], at(1) - 7200),
            }],
        )),
    );
    for c in out.iter_mut().filter(|c| c.name == "replayed") {
        c.seen.push(replay.update.update_id.to_string());
    }
    for c in out.iter_mut().filter(|c| c.expect == "IllegalOp") {
        c.illegal_op = Some(match c.name {
            "add_existing_node" => "already_exists",
            "unknown_node" => "not_found",
            "revoke_twice" | "quarantine_revoked" | "restore_active" => "wrong_status",
            "add_node_wrong_time" => "wrong_time",
            "set_node_changes_nothing" => "no_change",
            "new_approver_with_previous_keys" | "two_new_keys_for_one_approver" => "key_history",
            "params_out_of_range" => "bad_params",
            other => panic!("IllegalOp vector {other} names no kind"),
        });
    }
    out
}

fn to_file(c: &Case) -> Vec<u8> {
    let mut v = json!({
        "comment": c.comment,
        "expect": c.expect,
        "base_epoch": c.base_epoch,
        "now": c.now,
        "freshness": c.freshness,
        "seen": c.seen,
        "input": String::from_utf8(c.input.clone()).unwrap(),
    });
    if let Some(kind) = c.illegal_op {
        v["illegal_op"] = json!(kind);
    }
    let mut b = serde_json::to_vec_pretty(&v).unwrap();
    b.push(b'\n');
    b
}

fn path_of(c: &Case) -> PathBuf {
    let sub = if c.expect == "Accepted" {
        "accept"
    } else {
        "reject"
    };
    vectors_dir().join(sub).join(format!("{}.json", c.name))
}

/// Runs one vector file and returns the outcome name (for `IllegalOp`, with its kind:
/// `IllegalOp/not_found`).
fn outcome(file: &Value) -> String {
    let e = file["base_epoch"].as_u64().unwrap();
    let base: State = serde_json::from_slice(
        &std::fs::read(vectors_dir().join(format!("golden/state-{e:02}.json"))).unwrap(),
    )
    .unwrap();
    let input = file["input"].as_str().unwrap().as_bytes();
    let su: SignedUpdate = match decode(input) {
        Ok(su) => su,
        Err(err) => return err.name().to_owned(),
    };
    let seen: HashSet<UpdateId> = file["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().parse().unwrap())
        .collect();
    let freshness = match file["freshness"].as_str().unwrap() {
        "lone" => Freshness::Lone,
        "chain_inner" => Freshness::ChainInner,
        "chain_last" => Freshness::ChainLast,
        "history" => Freshness::History,
        other => panic!("unknown freshness {other}"),
    };
    match accept(&base, &seen, &su, file["now"].as_u64().unwrap(), freshness) {
        Ok(_) => "Accepted".to_owned(),
        Err(Rejection::IllegalOp { kind, .. }) => format!("IllegalOp/{}", kind.name()),
        Err(r) => r.name().to_owned(),
    }
}

/// What a vector file expects, in [`outcome`]'s words.
fn expected(file: &Value) -> String {
    let name = file["expect"].as_str().unwrap();
    match file.get("illegal_op") {
        Some(kind) => format!("{name}/{}", kind.as_str().unwrap()),
        None => name.to_owned(),
    }
}

#[test]
fn vector_files_match_the_generator() {
    let bless = std::env::var_os("RN_BLESS").is_some();
    for c in cases() {
        let path = path_of(&c);
        let bytes = to_file(&c);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            let committed = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (RN_BLESS=1 writes it)", path.display()));
            assert!(
                committed == bytes,
                "{} differs from the generator",
                path.display()
            );
        }
    }
}

/// With `RN_ARTIFACTS=DIR`, the outcome of every vector — expected against actual — is written
/// to `DIR/negative.json` before anything is asserted (`ci/gates.sh` reads it).
#[test]
fn every_vector_yields_its_named_outcome() {
    let mut names = BTreeSet::new();
    let mut rows = Vec::new();
    for sub in ["reject", "accept"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(vectors_dir().join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let file: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let want = expected(&file);
            let got = outcome(&file);
            rows.push(json!({
                "vector": format!("tests/vectors/{sub}/{}", path.file_name().unwrap().to_string_lossy()),
                "comment": file["comment"],
                "expected": want,
                "actual": got,
                "pass": got == want && (sub == "accept") == (want == "Accepted"),
            }));
        }
    }
    if let Some(dir) = std::env::var_os("RN_ARTIFACTS") {
        std::fs::create_dir_all(&dir).unwrap();
        let all_pass = rows.iter().all(|r| r["pass"] == true);
        let doc = json!({"source": "tests/vectors.rs every_vector_yields_its_named_outcome",
            "commit": std::env::var("RN_COMMIT").ok(), "vectors": rows, "all_pass": all_pass});
        let mut bytes = serde_json::to_vec_pretty(&doc).unwrap();
        bytes.push(b'\n');
        std::fs::write(PathBuf::from(dir).join("negative.json"), bytes).unwrap();
    }
    let count = rows.len();
    for r in &rows {
        assert_eq!(
            r["actual"], r["expected"],
            "{}: {}",
            r["vector"], r["comment"]
        );
        assert!(r["pass"] == true, "{} is in the wrong folder", r["vector"]);
        let want = r["expected"].as_str().unwrap();
        names.insert(want.split('/').next().unwrap().to_owned());
        names.insert(want.to_owned());
    }
    assert!(count >= 40, "only {count} vectors");
    // Every failure the gate can report for an update has at least one vector.
    for variant in [
        "UnknownKind",
        "Malformed",
        "WrongNetwork",
        "Stale",
        "Gap",
        "EpochStep",
        "Fork",
        "PrevRootMismatch",
        "Replay",
        "FutureDated",
        "BadValidity",
        "TtlTooLong",
        "Expired",
        "BadSignature",
        "BelowThreshold",
        "DuplicateSigner",
        "UnknownSigner",
        "RevokedSigner",
        "MissingOwner",
        "MissingProofOfPossession",
        "UnexpectedProof",
        "IllegalOp",
        "QuorumUnreachable",
        "InvariantViolated",
        "RootMismatch",
        "Accepted",
    ] {
        assert!(names.contains(variant), "no vector expects {variant}");
    }
    // Every kind of illegal op has one too (a vector's `illegal_op` is compared like `expect`).
    for kind in [
        IllegalOpKind::AlreadyExists,
        IllegalOpKind::NotFound,
        IllegalOpKind::WrongStatus,
        IllegalOpKind::WrongTime,
        IllegalOpKind::NoChange,
        IllegalOpKind::KeyHistory,
        IllegalOpKind::BadParams,
    ] {
        let want = format!("IllegalOp/{}", kind.name());
        assert!(names.contains(&want), "no vector expects {want}");
    }
}

#[test]
fn signature_checks_made_beforehand_admit_nothing_else() {
    use rn::ledger::gate::accept_with;
    use rn::ledger::quorum::PreVerified;
    let chain = common::chain();
    let s = &chain.states[1];
    let good = sign(
        update_on(s, 77, T0 + 5000, vec![Op::RevokeNode { id: id("web-2") }]),
        &["alice", "bob"],
    );
    let keys =
        |sig: &rn::ledger::update::Signature| vec![approver_key(sig.approver.as_str()).public()];
    let pre = PreVerified::compute(&good.update, &good.signatures, keys);
    let seen = HashSet::new();
    assert!(accept_with(s, &seen, &good, T0 + 5000, Freshness::Lone, Some(&pre)).is_ok());
    // The same signatures on an edited update, with the checks made for the original.
    let mut forged = good.clone();
    forged.update.reason = "edited".parse().unwrap();
    let err = accept_with(s, &seen, &forged, T0 + 5000, Freshness::Lone, Some(&pre)).unwrap_err();
    assert_eq!(err.name(), "BadSignature");
    // Checks made for the forged update itself find nothing valid.
    let pre = PreVerified::compute(&forged.update, &forged.signatures, keys);
    let err = accept_with(s, &seen, &forged, T0 + 5000, Freshness::Lone, Some(&pre)).unwrap_err();
    assert_eq!(err.name(), "BadSignature");
}

/// The other document kinds a signer or node reads refuse the same wrong shapes (spec §4.1):
/// each edit below decodes to the same typed value without the shape check.
#[test]
fn genesis_and_policy_refuse_other_shapes() {
    use rn::ledger::update::SignedGenesis;
    use rn::policy::Policy;
    let genesis_bytes = std::fs::read(vectors_dir().join("golden/genesis.json")).unwrap();
    let genesis: Value = serde_json::from_slice(&genesis_bytes).unwrap();
    assert!(decode::<SignedGenesis>(&genesis_bytes).is_ok());
    let state_order = [
        "kind",
        "network_id",
        "epoch",
        "params",
        "threshold",
        "approvers",
        "nodes",
        "policy",
    ];
    let mut as_array_state = genesis.clone();
    as_array_state["genesis"]["state"] = as_array(&genesis["genesis"]["state"], &state_order);
    let mut role_map = genesis.clone();
    role_map["genesis"]["state"]["approvers"][0]["role"] = json!({"owner": null});
    let mut reordered = genesis.clone();
    reordered["genesis"]["state"]["approvers"]
        .as_array_mut()
        .unwrap()
        .swap(0, 1);
    for (what, doc) in [
        ("genesis state as an array", as_array_state),
        ("owner role as a map", role_map),
        ("approvers out of id order", reordered),
    ] {
        let err = decode::<SignedGenesis>(&to_jcs(&doc)).unwrap_err();
        assert_eq!(err.name(), "Malformed", "{what}: {err}");
    }

    let policy: Value = json!({"kind": "rn.policy.v1", "rules": [
        {"src": ["tag:a"], "dst": ["tag:b"], "proto": "tcp", "ports": ["22"]}]});
    assert!(decode::<Policy>(&to_jcs(&policy)).is_ok());
    let mut rule_array = policy.clone();
    rule_array["rules"][0] = as_array(&policy["rules"][0], &["src", "dst", "proto", "ports"]);
    let mut proto_map = policy.clone();
    proto_map["rules"][0]["proto"] = json!({"tcp": null});
    for (what, doc) in [
        ("policy rule as an array", rule_array),
        ("proto as a map", proto_map),
    ] {
        let err = decode::<Policy>(&to_jcs(&doc)).unwrap_err();
        assert_eq!(err.name(), "Malformed", "{what}: {err}");
    }
}
