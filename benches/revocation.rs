//! Revocation latency on a long ledger: a running agent (memory backend, 999 peers) on a
//! 1,000-node network whose ledger holds 10,000 updates, against the same agent on a ledger of
//! 10 updates. Each run drops a quorum-signed revocation into the agent's inbox and times the
//! moment the file lands to the moment the revoked peer is gone from the interface. The agent
//! verifies only what each file appends (its verified state is kept between reconciles), so the
//! two must be close. Run with `make bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{sign, update_on};
use rn::firewall::FirewallKind;
use rn::keys::NodeSecret;
use rn::ledger::model::State;
use rn::ledger::reduce::reduce;
use rn::ledger::store::Store;
use rn::ledger::types::TransportKey;
use rn::ledger::update::Op;
use rn::node::agent::{Agent, Flags};
use rn::node::config::NodeConfig;
use rn::node::status::Log;
use rn::policy::Policy;
use rn::tunnel::{BackendKind, Memory};

const NODES: u32 = 1_000;
const RUNS: usize = 20;

/// The id of fleet node `i` (as [`common::fleet_node`] names it).
fn id(i: u32) -> String {
    format!("node-{i:05}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A ledger of `updates` updates on disk (policy first, then quarantine/restore pairs), its
/// genesis root and final state; node 0 holds `me`'s key.
fn ledger(
    dir: &Path,
    updates: usize,
    me: TransportKey,
) -> (rn::ledger::types::Sha256Digest, State) {
    let start = now() - updates as u64 - 10;
    let nodes = (0..NODES)
        .map(|i| {
            let mut n = common::fleet_node(i, start);
            if i == 0 {
                n.pubkey = me;
            }
            n
        })
        .collect();
    let state = common::fleet_state(nodes);
    let g = common::signed_genesis(state, &["alice", "bob", "carol"]);
    let pin = g.genesis.state.root();
    let policy = Policy::parse(
        br#"{"kind":"rn.policy.v1","rules":[{"src":["tag:fleet"],"dst":["tag:fleet"],"proto":"icmp"}]}"#,
    )
    .unwrap()
    .0;
    let mut state = g.genesis.state.clone();
    let mut chain = Vec::with_capacity(updates);
    for i in 0..updates {
        let op = if i == 0 {
            Op::SetPolicy {
                policy: Some(policy.hash()),
            }
        } else {
            // Quarantine and restore nodes beyond those the runs revoke.
            let n: u32 = 100 + ((i as u32 - 1) / 2 * 7919) % (NODES - 100);
            let id = id(n).parse().unwrap();
            if i % 2 == 1 {
                Op::QuarantineNode { id }
            } else {
                Op::RestoreNode { id }
            }
        };
        let su = sign(
            update_on(&state, 10_000 + i as u64, start + i as u64, vec![op]),
            &["alice", "bob"],
        );
        state = state.preview(&reduce(&state, &su.update).unwrap());
        chain.push(su);
    }
    let mut store = Store::bootstrap(dir, &common::file_bytes(&g), &pin, start).unwrap();
    store.apply(&chain, now(), "bench").unwrap();
    store.store_documents(&[policy.pinned()]).unwrap();
    (pin, state)
}

fn peer_present(memory: &Path, key: &str) -> Option<bool> {
    let text = std::fs::read_to_string(memory).ok()?;
    Some(text.contains(key))
}

/// Waits (bounded) until the peer's presence in the memory file is `want`.
fn wait_peer(memory: &Path, key: &str, want: bool) -> Duration {
    let t = Instant::now();
    while peer_present(memory, key) != Some(want) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "peer {key} present={want} not seen within 30 s"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    t.elapsed()
}

fn drop_in(inbox: &Path, name: &str, bytes: &[u8]) {
    let tmp = inbox.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, inbox.join(name)).unwrap();
}

/// p50 and p95 of revocation latency (ms) over `RUNS` runs on a ledger of `updates` updates.
fn measure(updates: usize) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let key = NodeSecret::generate().unwrap();
    let t = Instant::now();
    let (pin, mut state) = ledger(&dir, updates, key.public());
    eprintln!(
        "built a {updates}-update ledger on {NODES} nodes in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let memory = tmp.path().join("memory.json");
    let config = NodeConfig {
        node_id: id(0).parse().unwrap(),
        state_dir: dir.clone(),
        genesis_root: pin,
        private_key: PathBuf::from("/nonexistent"),
        interface: "rnbench".into(),
        listen_port: 51820,
        backend: BackendKind::Memory,
        firewall: FirewallKind::None,
        endpoints: BTreeMap::new(),
        exit: None,
        exit_allow_lan: false,
        keepalive_secs: 25,
        control_socket: tmp.path().join("ctl.sock"),
        memory_file: memory.clone(),
        serve_routes: false,
        serve_exit: false,
        masquerade: false,
        fwmark: 51820,
        mtu: 1420,
        mirrors: Vec::new(),
        sync_interval: rn::node::config::DEFAULT_SYNC_INTERVAL,
        ca_file: None,
        serve_port: 0,
        fanout: rn::node::config::DEFAULT_FANOUT,
    };
    let flags = Flags::new(|| std::process::exit(70));
    let stop = flags.stop.clone();
    let agent = std::thread::spawn(move || {
        let mut agent = Agent::with_backends(
            config,
            key,
            Box::new(Memory::new(&memory)),
            rn::firewall::open(FirewallKind::None),
            Log::new(true),
            None,
        );
        agent.run(&flags).unwrap();
    });
    let memory = tmp.path().join("memory.json");
    let inbox = dir.join("inbox");
    let first = common::node_key(&id(1), 1).to_string();
    wait_peer(&memory, &first, true);
    let mut lat = Vec::with_capacity(RUNS);
    let mut n = 0u64;
    let mut next = |state: &State, op: Op| {
        n += 1;
        sign(
            update_on(state, 1_000_000 + n, now(), vec![op]),
            &["alice", "bob"],
        )
    };
    for run in 0..RUNS {
        let victim = id(1 + run as u32).parse().unwrap();
        let victim_key = common::node_key(&id(1 + run as u32), 1).to_string();
        let revoke = next(&state, Op::RevokeNode { id: victim });
        state = state.preview(&reduce(&state, &revoke.update).unwrap());
        let t = Instant::now();
        drop_in(
            &inbox,
            &format!("revoke-{run}.json"),
            &common::file_bytes(&revoke),
        );
        wait_peer(&memory, &victim_key, false);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    stop.store(true, Ordering::Relaxed);
    agent.join().unwrap();
    lat.sort_by(f64::total_cmp);
    let p50 = lat[(lat.len() - 1) / 2];
    let p95 = lat[(lat.len() * 95).div_ceil(100) - 1];
    println!(
        "revocation latency, {updates}-update ledger, {NODES} nodes, {RUNS} runs: p50 {p50:.1} ms, p95 {p95:.1} ms"
    );
    (p50, p95)
}

fn main() {
    let (_, short) = measure(10);
    let (_, long) = measure(10_000);
    report::row(
        "revocation latency p95, 10,000-update 1,000-node ledger, memory backend (vs a 10-update ledger)",
        "ms",
        long,
        Some(short),
        1.5,
    );
    report::row(
        "revocation latency p95, 10,000-update 1,000-node ledger, memory backend",
        "ms",
        long,
        None,
        1000.0,
    );
}
