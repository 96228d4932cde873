//! Golden vectors (tests/vectors/golden/): fixed-seed keys, a genesis and a chain of updates
//! covering every op, with canonical bytes, leaves, digests, headers, roots and signatures.
//!
//! The test rebuilds everything and compares byte for byte with the committed files; then it
//! verifies the committed files from their bytes alone. `RN_BLESS=1 cargo test --test golden`
//! rewrites the files (review the diff: a change here is a format change).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use rn::keys::fingerprint;
use rn::ledger::canonical::{decode, to_jcs};
use rn::ledger::proof::NodeProof;
use rn::ledger::types::{Sha256Digest, hex};
use rn::ledger::update::{SignedGenesis, SignedUpdate};
use rn::ledger::{Freshness, State, accept, verify_genesis};
use serde_json::json;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/golden")
}

fn state_record(s: &State) -> serde_json::Value {
    let a_leaves: Vec<_> = s
        .approver_leaves()
        .map(|(id, l)| json!({"id": id, "leaf": hex(&l)}))
        .collect();
    let n_leaves: Vec<_> = s
        .node_leaves()
        .map(|(id, l)| json!({"id": id, "leaf": hex(&l)}))
        .collect();
    let header = String::from_utf8(s.header_bytes()).unwrap();
    json!({
        "epoch": s.epoch().get(),
        "approver_leaves": a_leaves,
        "node_leaves": n_leaves,
        "header_jcs": header,
        "root": s.root().to_string(),
    })
}

fn expected_files() -> BTreeMap<String, Vec<u8>> {
    let c = common::chain();
    let mut files = BTreeMap::new();
    let mut keys = serde_json::Map::new();
    for (id, second) in [
        ("alice", false),
        ("bob", false),
        ("carol", false),
        ("carol", true),
        ("dave", true),
    ] {
        let (label, k) = if second {
            (
                format!("rn golden approver {id} 2"),
                common::approver_key2(id),
            )
        } else {
            (format!("rn golden approver {id}"), common::approver_key(id))
        };
        let seed = Sha256Digest::of(label.as_bytes());
        keys.insert(
            format!("{id}{}", if second { "#2" } else { "" }),
            json!({"seed": format!("SHA-256({label:?})"), "seed_hex": hex(&seed.0), "pubkey": k.public().to_string(), "ssh_fingerprint": fingerprint(&k.public())}),
        );
    }
    let nodes: serde_json::Map<_, _> = [("web-1", 1), ("web-2", 1), ("web-2", 2), ("db-1", 1)]
        .iter()
        .map(|(id, g)| {
            (
                format!("{id}#{g}"),
                json!(common::node_key(id, *g).to_string()),
            )
        })
        .collect();
    files.insert(
        "keys.json".into(),
        common::file_bytes(&json!({"approvers": keys, "nodes": nodes})),
    );
    files.insert("genesis.json".into(), common::file_bytes(&c.genesis));
    let mut epochs = Vec::new();
    for (e, s) in c.states.iter().enumerate() {
        files.insert(format!("state-{e:02}.json"), common::file_bytes(s));
        let mut rec = state_record(s);
        if e > 0 {
            let u = &c.updates[e - 1].update;
            rec["update_message_sha256"] = json!(u.hash().to_string());
            rec["update_message_jcs"] = json!(String::from_utf8(u.message()).unwrap());
        } else {
            rec["genesis_message_jcs"] =
                json!(String::from_utf8(c.genesis.genesis.message()).unwrap());
        }
        epochs.push(rec);
    }
    for (i, su) in c.updates.iter().enumerate() {
        files.insert(format!("update-{:02}.json", i + 1), common::file_bytes(su));
    }
    // Inclusion proofs (spec §4.1) of every node at epoch 2: three leaves, paths of 1 and 2.
    for node in c.states[2].nodes() {
        let proof = NodeProof::of(&c.states[2], &node.id).unwrap();
        files.insert(
            format!("proof-02-{}.json", node.id),
            common::file_bytes(&proof),
        );
    }
    files.insert(
        "roots.json".into(),
        common::file_bytes(&json!({"epochs": epochs})),
    );
    files
}

#[test]
fn golden_vectors_are_reproduced_byte_for_byte() {
    let files = expected_files();
    let bless = std::env::var_os("RN_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(dir()).unwrap();
    }
    for (name, bytes) in &files {
        let path = dir().join(name);
        if bless {
            std::fs::write(&path, bytes).unwrap();
            continue;
        }
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (RN_BLESS=1 writes it)", path.display()));
        assert!(
            committed == *bytes,
            "{name} differs from what the code produces now: the format changed"
        );
    }
}

#[test]
fn committed_golden_files_verify_from_their_bytes() {
    let read = |name: &str| std::fs::read(dir().join(name)).unwrap();
    let genesis: SignedGenesis = decode(&read("genesis.json")).unwrap();
    let roots: serde_json::Value = serde_json::from_slice(&read("roots.json")).unwrap();
    let epochs = roots["epochs"].as_array().unwrap();
    let g = verify_genesis(
        &genesis,
        Some(&epochs[0]["root"].as_str().unwrap().parse().unwrap()),
    )
    .unwrap();
    let mut state = g.state().clone();
    let mut seen = HashSet::new();
    assert_eq!(
        to_jcs(&state),
        read("state-00.json").strip_suffix(b"\n").unwrap()
    );
    for (e, expected) in epochs.iter().enumerate().skip(1) {
        let bytes = read(&format!("update-{e:02}.json"));
        let su: SignedUpdate = decode(&bytes).unwrap();
        assert_eq!(
            common::file_bytes(&su),
            bytes,
            "update-{e:02}.json is canonical"
        );
        let v = accept(&state, &seen, &su, 0, Freshness::History)
            .unwrap_or_else(|err| panic!("epoch {e}: {err}"));
        seen.insert(su.update.update_id);
        v.commit_to(&mut state);
        assert_eq!(state.root().to_string(), expected["root"].as_str().unwrap());
        assert_eq!(
            to_jcs(&state),
            read(&format!("state-{e:02}.json"))
                .strip_suffix(b"\n")
                .unwrap()
        );
        assert_eq!(
            state.header_bytes(),
            expected["header_jcs"].as_str().unwrap().as_bytes()
        );
        // The state file decodes on its own to the same root (record order does not matter).
        let s: State = serde_json::from_slice(&read(&format!("state-{e:02}.json"))).unwrap();
        assert_eq!(s.root(), state.root());
    }
    assert_eq!(state.epoch().get(), 7);
}

#[test]
fn every_op_appears_in_the_golden_chain() {
    let c = common::chain();
    let names: HashSet<&str> = c
        .updates
        .iter()
        .flat_map(|u| u.update.ops.iter().map(|o| o.name()))
        .collect();
    assert_eq!(names.len(), 13, "{names:?}");
}

#[test]
fn spec_worked_example_quotes_the_golden_roots() {
    let spec =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/spec.md"))
            .unwrap();
    let c = common::chain();
    for s in &c.states[..3] {
        let root = s.root().to_string();
        assert!(
            spec.contains(&root),
            "docs/spec.md does not quote the epoch {} root {root}",
            s.epoch()
        );
    }
}
