//! The node agent against fake tunnel and firewall backends: reconcile by diff, inbox,
//! restricted transitions, read-back mismatch → retry → restricted, drift undo; and the
//! nftables rendering of a sample policy against a golden file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::{T0, node, sign, update_on};
use rn::firewall::{FilterIntent, Firewall, FirewallError, FirewallKind, render};
use rn::keys::NodeSecret;
use rn::ledger::State;
use rn::ledger::store::Store;
use rn::ledger::types::TransportKey;
use rn::ledger::update::{Op, SignedUpdate};
use rn::node::agent::Agent;
use rn::node::config::NodeConfig;
use rn::node::plan::plan;
use rn::node::status::{Log, NodeMode};
use rn::policy::{PinnedPolicy, Policy, PolicyView, compile};
use rn::tunnel::{
    BackendKind, Diff, InterfaceIntent, Observed, ObservedPeer, TunnelBackend, TunnelError,
};

#[derive(Default)]
struct FakeState {
    /// The interface as it stands (not present until the first apply).
    iface: Observed,
    applies: u32,
    /// Every diff the agent applied, in order.
    diffs: Vec<Diff>,
    /// Simulates a backend that reports success but keeps nothing.
    forgets: bool,
    /// A peer someone added by hand.
    stray: Option<ObservedPeer>,
    /// Every route intent applied, in order.
    routes: Vec<rn::tunnel::RouteIntent>,
    /// Someone deleted the exit's policy routing by hand.
    routes_deleted: bool,
}

struct FakeTunnel(Arc<Mutex<FakeState>>);

impl TunnelBackend for FakeTunnel {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn apply(&mut self, intent: &InterfaceIntent<'_>, diff: &Diff) -> Result<(), TunnelError> {
        let mut s = self.0.lock().unwrap();
        s.applies += 1;
        s.diffs.push(diff.clone());
        s.stray = None;
        if !s.forgets {
            s.iface = Observed::from_intent(intent);
        }
        Ok(())
    }
    fn observe(&self) -> Result<Observed, TunnelError> {
        let s = self.0.lock().unwrap();
        let mut o = s.iface.clone();
        o.peers.extend(s.stray.clone());
        o.peers.sort_by_key(|p| p.pubkey);
        Ok(o)
    }
    fn shutdown(&mut self) -> Result<(), TunnelError> {
        Ok(())
    }
    fn apply_routes(&mut self, routes: &rn::tunnel::RouteIntent) -> Result<(), TunnelError> {
        let mut s = self.0.lock().unwrap();
        s.routes.push(routes.clone());
        s.routes_deleted = false;
        Ok(())
    }
    fn routes_hold(&self) -> bool {
        !self.0.lock().unwrap().routes_deleted
    }
}

#[derive(Default, Debug, PartialEq)]
enum Filter {
    #[default]
    Never,
    DropAll,
    Rules(usize),
    /// Someone deleted the table.
    Flushed,
    /// The table is gone and nft refuses every load.
    Broken,
}

struct FakeFirewall(Arc<Mutex<Filter>>);

impl Firewall for FakeFirewall {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn apply(&mut self, _: &str, intent: &FilterIntent<'_>) -> Result<(), FirewallError> {
        if *self.0.lock().unwrap() == Filter::Broken {
            return Err(FirewallError {
                backend: "fake",
                detail: "refused".into(),
            });
        }
        *self.0.lock().unwrap() = match intent {
            FilterIntent::DropAll => Filter::DropAll,
            FilterIntent::Rules { inbound, .. } => Filter::Rules(inbound.len()),
        };
        Ok(())
    }
    fn clear(&mut self) -> Result<(), FirewallError> {
        Ok(())
    }
    fn holds(&self) -> bool {
        !matches!(*self.0.lock().unwrap(), Filter::Flushed | Filter::Broken)
    }
}

const POLICY: &str = r#"{"kind":"rn.policy.v1","rules":[{"src":["tag:a"],"dst":["tag:b"],"proto":"icmp"},{"src":["tag:b"],"dst":["tag:a"],"proto":"tcp","ports":["22"]}]}"#;

struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    state: State,
    n: u64,
    keys: BTreeMap<&'static str, TransportKey>,
}

impl World {
    /// Golden genesis; nodes n1 (tag:a, this node), n2 (tag:b), n3 (tag:b); the policy above.
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let g = common::genesis();
        Store::bootstrap(&dir, &common::file_bytes(&g), &g.genesis.state.root(), T0).unwrap();
        let mut w = World {
            _tmp: tmp,
            dir,
            state: g.genesis.state.clone(),
            n: 0,
            keys: BTreeMap::new(),
        };
        let mut ops = Vec::new();
        let next = T0 + 1000 + (w.n + 1) * 10; // the time of the update about to be signed
        for (i, (id, tag)) in [("n1", "tag:a"), ("n2", "tag:b"), ("n3", "tag:b")]
            .into_iter()
            .enumerate()
        {
            let x = node(id, i as u32 + 1, &[tag], next);
            w.keys.insert(id, x.pubkey);
            ops.push(Op::AddNode { node: x });
        }
        w.commit(ops);
        let policy = Policy::parse(POLICY.as_bytes()).unwrap().0;
        let hash = policy.hash();
        w.commit(vec![Op::SetPolicy { policy: Some(hash) }]);
        let mut s = Store::open(&w.dir, None, w.at()).unwrap();
        s.store_documents(&[policy.pinned()]).unwrap();
        w
    }

    /// Pins `policy` (JSON) with a quorum-signed update.
    fn set_policy(&mut self, policy: &str) {
        let policy = Policy::parse(policy.as_bytes()).unwrap().0;
        self.commit(vec![Op::SetPolicy {
            policy: Some(policy.hash()),
        }]);
        let mut s = Store::open(&self.dir, None, self.at()).unwrap();
        s.store_documents(&[policy.pinned()]).unwrap();
    }

    fn at(&self) -> u64 {
        T0 + 1000 + self.n * 10
    }

    fn signed(&mut self, ops: Vec<Op>, signers: &[&str]) -> SignedUpdate {
        self.n += 1;
        sign(
            update_on(&self.state, 700 + self.n, self.at(), ops),
            signers,
        )
    }

    fn commit(&mut self, ops: Vec<Op>) {
        let su = self.signed(ops, &["alice", "bob"]);
        let mut s = Store::open(&self.dir, None, self.at()).unwrap();
        s.apply(std::slice::from_ref(&su), self.at(), "test")
            .unwrap();
        self.state = s.state().clone();
    }

    fn config(&self) -> NodeConfig {
        NodeConfig {
            node_id: "n1".parse().unwrap(),
            state_dir: self.dir.clone(),
            genesis_root: common::genesis().genesis.state.root(),
            private_key: self.dir.with_file_name("wg.key"),
            interface: "rn0".into(),
            listen_port: 51820,
            backend: BackendKind::Memory,
            firewall: FirewallKind::None,
            endpoints: BTreeMap::from([(
                "n2".parse().unwrap(),
                "10.99.0.2:51820".parse().unwrap(),
            )]),
            exit: None,
            exit_allow_lan: false,
            keepalive_secs: 25,
            control_socket: self.dir.join("unused.sock"),
            memory_file: self.dir.join("unused.json"),
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
        }
    }

    fn agent(&self) -> (Agent, Arc<Mutex<FakeState>>, Arc<Mutex<Filter>>) {
        self.agent_with(self.config())
    }

    fn agent_with(&self, config: NodeConfig) -> (Agent, Arc<Mutex<FakeState>>, Arc<Mutex<Filter>>) {
        let t = Arc::new(Mutex::new(FakeState::default()));
        let f = Arc::new(Mutex::new(Filter::Never));
        let agent = Agent::with_backends(
            config,
            common::node_secret("n1", 1),
            Box::new(FakeTunnel(t.clone())),
            Box::new(FakeFirewall(f.clone())),
            Log::new(true),
            None,
        );
        (agent, t, f)
    }
}

fn status(agent: &Agent) -> rn::node::status::Status {
    agent.status().lock().unwrap().clone()
}

fn drop_in_inbox(dir: &Path, name: &str, su: &SignedUpdate) {
    std::fs::create_dir_all(dir.join("inbox")).unwrap();
    std::fs::write(dir.join("inbox").join(name), common::file_bytes(su)).unwrap();
}

#[test]
fn a_trusted_node_gets_exactly_its_policy_peers() {
    let w = World::new();
    let (mut agent, t, f) = w.agent();
    agent.reconcile();
    let s = status(&agent);
    assert_eq!((s.mode, s.epoch), (NodeMode::Trusted, 2));
    let peers: Vec<TransportKey> = t
        .lock()
        .unwrap()
        .iface
        .peers
        .iter()
        .map(|p| p.pubkey)
        .collect();
    let mut want = vec![w.keys["n2"], w.keys["n3"]];
    want.sort();
    assert_eq!(peers, want);
    assert_eq!(t.lock().unwrap().iface.peers[0].keepalive, Some(25));
    assert_eq!(
        *f.lock().unwrap(),
        Filter::Rules(1),
        "n1 accepts tcp/22 from tag:b"
    );
    // A second reconcile with nothing changed applies nothing.
    agent.reconcile();
    assert_eq!(t.lock().unwrap().applies, 1);
}

#[test]
fn a_revocation_in_the_inbox_removes_the_peer_and_a_bad_file_is_set_aside() {
    let mut w = World::new();
    let (mut agent, t, _) = w.agent();
    agent.reconcile();
    let revoke = w.signed(
        vec![Op::RevokeNode {
            id: "n2".parse().unwrap(),
        }],
        &["alice", "bob"],
    );
    drop_in_inbox(&w.dir, "revoke.json", &revoke);
    let forged = w.signed(
        vec![Op::RevokeNode {
            id: "n3".parse().unwrap(),
        }],
        &["alice"],
    );
    drop_in_inbox(&w.dir, "z-under-signed.json", &forged);
    agent.reconcile();
    let peers: Vec<TransportKey> = t
        .lock()
        .unwrap()
        .iface
        .peers
        .iter()
        .map(|p| p.pubkey)
        .collect();
    assert_eq!(peers, vec![w.keys["n3"]]);
    assert!(!w.dir.join("inbox/revoke.json").exists());
    assert!(w.dir.join("inbox/rejected/z-under-signed.json").exists());
    let s = status(&agent);
    assert_eq!((s.epoch, s.rejections), (3, 1));
}

#[test]
fn a_revoked_node_and_a_tampered_ledger_are_restricted() {
    let mut w = World::new();
    let (mut agent, t, f) = w.agent();
    agent.reconcile();
    w.commit(vec![Op::RevokeNode {
        id: "n1".parse().unwrap(),
    }]);
    agent.reconcile();
    let s = status(&agent);
    assert_eq!(s.mode, NodeMode::Restricted);
    assert!(
        s.reason.as_deref().unwrap().contains("revoked"),
        "{:?}",
        s.reason
    );
    assert!(t.lock().unwrap().iface.peers.is_empty());
    assert_eq!(*f.lock().unwrap(), Filter::DropAll);

    let w = World::new();
    let (mut agent, t, f) = w.agent();
    agent.reconcile();
    let log = w.dir.join("ledger.log");
    let mut b = std::fs::read(&log).unwrap();
    let i = b.len() / 2;
    b[i] ^= 1;
    std::fs::write(&log, b).unwrap();
    agent.reconcile();
    let s = status(&agent);
    assert_eq!(s.mode, NodeMode::Restricted);
    assert!(
        s.reason.as_deref().unwrap().contains("does not verify"),
        "{:?}",
        s.reason
    );
    assert!(t.lock().unwrap().iface.peers.is_empty());
    assert_eq!(*f.lock().unwrap(), Filter::DropAll);
}

#[test]
fn a_backend_that_does_not_keep_the_configuration_is_retried_then_restricted() {
    let w = World::new();
    let (mut agent, t, f) = w.agent();
    t.lock().unwrap().forgets = true;
    agent.reconcile();
    let s = status(&agent);
    assert_eq!(s.mode, NodeMode::Restricted);
    assert!(
        s.reason
            .as_deref()
            .unwrap()
            .contains("read-back differs (attempt 2)"),
        "{:?}",
        s.reason
    );
    assert!(
        t.lock().unwrap().applies >= 2,
        "applied, read back, retried"
    );
    assert_eq!(*f.lock().unwrap(), Filter::DropAll);
}

#[test]
fn a_peer_added_by_hand_is_undone() {
    let w = World::new();
    let (mut agent, t, _) = w.agent();
    agent.reconcile();
    let applies = t.lock().unwrap().applies;
    t.lock().unwrap().stray = Some(ObservedPeer {
        pubkey: common::node_key("intruder", 1),
        allowed: vec!["10.250.0.1/32".parse().unwrap()],
        endpoint: None,
        keepalive: None,
        last_handshake: None,
        rx_bytes: 0,
        tx_bytes: 0,
    });
    agent.undo_drift();
    assert!(t.lock().unwrap().stray.is_none());
    assert_eq!(t.lock().unwrap().applies, applies + 1);
    assert_eq!(status(&agent).drift_corrections, 1);
}

/// The diffs applied since index `from`.
fn diffs_since(t: &Arc<Mutex<FakeState>>, from: usize) -> Vec<Diff> {
    t.lock().unwrap().diffs[from..].to_vec()
}

#[test]
fn a_ledger_change_touches_only_the_peers_it_changes() {
    let mut w = World::new();
    let (mut agent, t, f) = w.agent();
    agent.reconcile();
    let first = diffs_since(&t, 0);
    assert_eq!(first.len(), 1);
    assert!(first[0].create && first[0].added.len() == 2, "{first:?}");

    // A new peer: exactly one peer added, nothing else sent.
    let n4 = node("n4", 4, &["tag:b"], w.at() + 10);
    let key4 = n4.pubkey;
    w.commit(vec![Op::AddNode { node: n4 }]);
    agent.reconcile();
    let d = diffs_since(&t, 1);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].added.iter().map(|p| p.pubkey).collect::<Vec<_>>(),
        vec![key4]
    );
    assert!(d[0].changed.is_empty() && d[0].removed.is_empty(), "{d:?}");
    assert!(!d[0].device_settings() && d[0].mtu.is_none(), "{d:?}");
    assert!(d[0].add_addresses.is_empty() && d[0].remove_addresses.is_empty());

    // A revocation: exactly that peer removed.
    w.commit(vec![Op::RevokeNode {
        id: "n2".parse().unwrap(),
    }]);
    agent.reconcile();
    let d = diffs_since(&t, 2);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].removed, vec![w.keys["n2"]]);
    assert!(d[0].added.is_empty() && d[0].changed.is_empty() && !d[0].device_settings());

    // A policy change that leaves the peer set alone reaches the filter only.
    let applies = t.lock().unwrap().applies;
    let wider = Policy::parse(
        br#"{"kind":"rn.policy.v1","rules":[{"src":["tag:a"],"dst":["tag:b"],"proto":"icmp"},{"src":["tag:b"],"dst":["tag:a"],"proto":"tcp","ports":["22"]},{"src":["tag:b"],"dst":["tag:a"],"proto":"icmp"}]}"#,
    )
    .unwrap()
    .0;
    let hash = wider.hash();
    w.commit(vec![Op::SetPolicy { policy: Some(hash) }]);
    Store::open(&w.dir, None, w.at())
        .unwrap()
        .store_documents(&[wider.pinned()])
        .unwrap();
    agent.reconcile();
    assert_eq!(status(&agent).epoch, 5);
    assert_eq!(t.lock().unwrap().applies, applies, "no tunnel change");
    assert_eq!(*f.lock().unwrap(), Filter::Rules(2));
}

#[test]
fn a_re_keyed_peer_hands_its_prefixes_over_before_it_goes() {
    let mut w = World::new();
    let (mut agent, t, _) = w.agent();
    agent.reconcile();
    let n = t.lock().unwrap().diffs.len();
    let new = common::node_key("n2", 2);
    w.commit(vec![Op::RotateNodeKey {
        id: "n2".parse().unwrap(),
        pubkey: new,
    }]);
    agent.reconcile();
    let d = diffs_since(&t, n);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        d[0].added.iter().map(|p| p.pubkey).collect::<Vec<_>>(),
        vec![new]
    );
    assert_eq!(
        d[0].handed_over,
        vec![w.keys["n2"]],
        "removed after the new key is in"
    );
    assert!(d[0].removed.is_empty() && d[0].changed.is_empty(), "{d:?}");
}

#[test]
fn a_missing_address_a_changed_mtu_and_a_deleted_interface_are_drift() {
    let w = World::new();
    let (mut agent, t, _) = w.agent();
    agent.reconcile();
    let n = t.lock().unwrap().diffs.len();
    {
        let mut s = t.lock().unwrap();
        s.iface.addresses.clear();
        s.iface.mtu = Some(1500);
    }
    agent.undo_drift();
    let d = diffs_since(&t, n);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].add_addresses, vec!["100.96.0.1/16".parse().unwrap()]);
    assert_eq!(d[0].mtu, Some(1420));
    assert!(d[0].added.is_empty() && d[0].removed.is_empty() && !d[0].device_settings());
    assert_eq!(t.lock().unwrap().iface.mtu, Some(1420));

    t.lock().unwrap().iface = Observed::default();
    agent.undo_drift();
    let d = diffs_since(&t, n + 1);
    assert!(d.len() == 1 && d[0].create, "{d:?}");
    let s = status(&agent);
    assert_eq!((s.mode, s.drift_corrections), (NodeMode::Trusted, 2));
    assert_eq!(t.lock().unwrap().iface.peers.len(), 2);
}

#[test]
fn drift_that_cannot_be_undone_restricts_the_node() {
    let w = World::new();
    let (mut agent, t, f) = w.agent();
    agent.reconcile();
    {
        let mut s = t.lock().unwrap();
        s.iface = Observed::default();
        s.forgets = true;
    }
    agent.undo_drift();
    let s = status(&agent);
    assert_eq!(s.mode, NodeMode::Restricted, "{s:?}");
    assert_eq!(*f.lock().unwrap(), Filter::DropAll);
}

#[test]
fn a_flushed_filter_is_loaded_again_and_one_that_cannot_be_restricts() {
    let w = World::new();
    let (mut agent, t, f) = w.agent();
    agent.reconcile();
    assert_eq!(*f.lock().unwrap(), Filter::Rules(1));
    *f.lock().unwrap() = Filter::Flushed;
    agent.undo_drift();
    assert_eq!(*f.lock().unwrap(), Filter::Rules(1), "loaded again");
    let s = status(&agent);
    assert_eq!((s.mode, s.drift_corrections), (NodeMode::Trusted, 1));

    // nft refuses: the node is restricted and holds no peers, never an unfiltered interface.
    *f.lock().unwrap() = Filter::Broken;
    agent.undo_drift();
    let s = status(&agent);
    assert_eq!(s.mode, NodeMode::Restricted, "{s:?}");
    assert!(t.lock().unwrap().iface.peers.is_empty());
    // Once nft works again, the next drift check brings the plan back.
    *f.lock().unwrap() = Filter::Never;
    agent.undo_drift();
    let s = status(&agent);
    assert_eq!(s.mode, NodeMode::Trusted, "{s:?}");
    assert_eq!(*f.lock().unwrap(), Filter::Rules(1));
    assert_eq!(t.lock().unwrap().iface.peers.len(), 2);
}

#[test]
fn a_committed_staged_key_becomes_the_nodes_key_in_the_same_pass() {
    let mut w = World::new();
    let (mut agent, t, _) = w.agent();
    agent.reconcile();
    let key_file = w.config().private_key;
    let staged = rn::node::agent::staged_key_path(&key_file);
    let next = NodeSecret::generate().unwrap();
    rn::files::write_atomic(&staged, next.to_base64().as_bytes(), 0o600, false).unwrap();
    let n = t.lock().unwrap().diffs.len();
    w.commit(vec![Op::RotateNodeKey {
        id: "n1".parse().unwrap(),
        pubkey: next.public(),
    }]);
    agent.reconcile();
    let s = status(&agent);
    assert_eq!(s.mode, NodeMode::Trusted, "{s:?}");
    assert_eq!(s.key, Some(next.public().to_string()));
    let d = diffs_since(&t, n);
    assert!(d.len() == 1 && d[0].private_key, "{d:?}");
    assert!(
        d[0].added.is_empty() && d[0].removed.is_empty(),
        "the peers stay: {d:?}"
    );
    assert_eq!(t.lock().unwrap().iface.public_key, Some(next.public()));
    assert!(!staged.exists(), "the staged key became the key file");
    assert_eq!(NodeSecret::load(&key_file).unwrap().public(), next.public());

    // A key on the ledger that the node holds nowhere: restricted, saying so.
    w.commit(vec![Op::RotateNodeKey {
        id: "n1".parse().unwrap(),
        pubkey: common::node_key("n1", 9),
    }]);
    agent.reconcile();
    let s = status(&agent);
    assert_eq!(s.mode, NodeMode::Restricted);
    assert!(
        s.reason.as_deref().unwrap().contains("rn node rekey"),
        "{:?}",
        s.reason
    );
    assert!(t.lock().unwrap().iface.peers.is_empty());
}

#[test]
fn plans_are_pure_functions_of_the_ledger() {
    let w = World::new();
    let store = Store::open(&w.dir, None, w.at()).unwrap();
    let a = plan(&w.config(), Ok(&store));
    let b = plan(&w.config(), Ok(&store));
    assert_eq!(a, b);
    assert_eq!(
        a.addresses[0].to_string(),
        "100.96.0.1/16",
        "host address with the overlay prefix"
    );
    assert_eq!(
        a.peers
            .iter()
            .find(|(id, _)| id.as_str() == "n2")
            .unwrap()
            .1
            .endpoint,
        Some("10.99.0.2:51820".parse().unwrap())
    );
    let unreadable = plan(&w.config(), Err("ledger unreadable: x".into()));
    assert!(unreadable.restricted.is_some() && unreadable.peers.is_empty());
}

#[test]
fn nftables_rendering_matches_the_golden_file() {
    let w = World::new();
    let store = Store::open(&w.dir, None, w.at()).unwrap();
    let pinned = PinnedPolicy::load(&store).unwrap();
    let n2 = "n2".parse().unwrap();
    let intents = compile(pinned.view(), store.state(), &n2, None);
    // The ledger distribution port, from every other active member (as the plan gives it).
    let members: Vec<_> = store
        .state()
        .nodes()
        .filter(|n| n.status == rn::ledger::model::NodeStatus::Active && n.id != n2)
        .flat_map(|n| n.addresses.iter().copied())
        .collect();
    let mut out = render(
        "rn0",
        &FilterIntent::Rules {
            inbound: &intents.inbound,
            forward: &intents.forward,
            masquerade: false,
            serve: Some((51821, &members)),
        },
    );
    out.push_str("# --- restricted ---\n");
    out.push_str(&render("rn0", &FilterIntent::DropAll));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/nft/sample.nft");
    if std::env::var_os("RN_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &out).unwrap();
    }
    assert_eq!(out, std::fs::read_to_string(&path).unwrap());
    assert!(matches!(pinned.view(), PolicyView::Held(_)));
}

#[test]
fn the_ledger_server_answers_active_members_only_and_passes_notifications_on() {
    use rn::ledger::canonical::{decode, to_jcs};
    use rn::ledger::carried::Head;
    use rn::node::distribute::{Event, LedgerHandler, Shared};
    use rn::sync::layout::Snapshot;
    use rn::sync::serve::{Handler, Request};
    use std::net::SocketAddr;

    let w = World::new();
    let store = Store::open(&w.dir, None, w.at()).unwrap();
    let epoch = store.state().epoch().get();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let h = LedgerHandler::new(shared.clone(), tx);
    let member: SocketAddr = "100.96.0.2:40000".parse().unwrap();
    let stranger: SocketAddr = "100.96.0.99:40000".parse().unwrap();
    let ask = |method: &str, path: &str, body: &[u8], peer: SocketAddr| {
        let r = h.handle(&Request {
            method,
            path,
            body,
            peer,
        });
        (r.status, r.body)
    };
    // Nobody is a member before the first plan; then a member finds a node that serves nothing
    // while it is not trusted.
    assert_eq!(ask("GET", "rn/v1/head", b"", member).0, 403);
    shared.lock().unwrap().members.insert(member.ip());
    assert_eq!(ask("GET", "rn/v1/head", b"", member).0, 503);
    let mut snapshot = Snapshot::default();
    snapshot.refresh(&store);
    shared.lock().unwrap().snapshot = Some(snapshot);
    let (status, body) = ask("GET", "rn/v1/head", b"", member);
    assert_eq!(status, 200);
    let head: Head = decode(&body).unwrap();
    assert_eq!((head.epoch.get(), head.root), (epoch, store.state().root()));
    let (status, body) = ask("GET", &format!("rn/v1/log/{epoch}"), b"", member);
    assert_eq!(status, 200);
    let mut line = to_jcs(&store.history().last().unwrap().signed);
    line.push(b'\n');
    assert_eq!(body, line);
    assert_eq!(
        ask("GET", &format!("rn/v1/log/{}", epoch + 1), b"", member).0,
        404
    );
    assert_eq!(ask("GET", "rn/v1/head", b"", stranger).0, 403);
    // A notification of a later epoch is passed on (202); of this epoch it is answered 200;
    // another network's or a malformed one is refused.
    let mut ahead = head.clone();
    ahead.epoch = common::u(epoch + 1);
    assert_eq!(ask("POST", "rn/v1/notify", &to_jcs(&ahead), member).0, 202);
    assert!(
        matches!(rx.try_recv(), Ok(Event::Notified(ip, e)) if ip == member.ip() && e == epoch + 1)
    );
    assert_eq!(ask("POST", "rn/v1/notify", &to_jcs(&head), member).0, 200);
    let mut other = ahead.clone();
    other.network_id = "other".parse().unwrap();
    assert_eq!(ask("POST", "rn/v1/notify", &to_jcs(&other), member).0, 400);
    assert_eq!(ask("POST", "rn/v1/notify", b"{}", member).0, 400);
    assert_eq!(
        ask("POST", "rn/v1/notify", &to_jcs(&ahead), stranger).0,
        403
    );
    assert!(
        rx.try_recv().is_err(),
        "only the one notification is passed on"
    );
    assert_eq!(ask("POST", "rn/v1/head", b"", member).0, 405);
}

#[test]
fn a_pull_stops_fetching_at_its_deadline_and_gates_what_it_has() {
    use rn::node::distribute::{LedgerHandler, Shared};
    use rn::sync::fetch::{Client, fetch_beyond, fetch_head};
    use rn::sync::layout::Snapshot;
    use rn::sync::serve::{Limits, Server};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let w = World::new();
    let store = Store::open(&w.dir, None, w.at()).unwrap();
    let (network, epoch) = (
        store.state().network_id().clone(),
        store.state().epoch().get(),
    );
    assert_eq!(epoch, 2, "two updates: the nodes, then the policy");
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut snapshot = Snapshot::default();
    snapshot.refresh(&store);
    drop(store);
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    {
        let mut s = shared.lock().unwrap();
        s.snapshot = Some(snapshot);
        s.members.insert(addr.ip());
    }
    let (tx, _rx) = std::sync::mpsc::sync_channel(4);
    let stop = Arc::new(AtomicBool::new(false));
    let server = Server::spawn(
        Arc::new(LedgerHandler::new(shared, tx)),
        Limits::default(),
        stop.clone(),
    );
    server.listen_on(vec![addr]);
    let t = Instant::now();
    while server.bound().is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Client::new(None, Duration::from_secs(5), Duration::from_secs(2)).unwrap();
    let base = format!("http://{addr}");
    let head = fetch_head(&client, &base, &network).unwrap();
    assert_eq!(head.epoch.get(), 2);
    let other = fetch_head(&client, &base, &"other".parse().unwrap()).unwrap_err();
    assert!(
        other
            .to_string()
            .ends_with(&format!("the layout is of network {network}, not other")),
        "{other}"
    );
    // With time to spare: both updates and the policy the second pins.
    let all = fetch_beyond(
        &client,
        &base,
        0,
        2,
        Instant::now() + Duration::from_secs(30),
    )
    .unwrap()
    .unwrap();
    assert_eq!((all.updates.len(), all.documents.len()), (2, 1));
    // Out of time: the first update only, which the gate can take on its own.
    let first = fetch_beyond(&client, &base, 0, 2, Instant::now())
        .unwrap()
        .unwrap();
    assert_eq!((first.updates.len(), first.documents.len()), (1, 0));
    assert_eq!(first.updates[0].update.epoch_new.get(), 1);
    // Nothing beyond the head.
    assert!(
        fetch_beyond(&client, &base, 2, 2, Instant::now())
            .unwrap()
            .is_none()
    );
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn the_endpoints_answer_lists_live_sessions_only() {
    use rn::node::distribute::{LIVE_SESSION, endpoints_answer};
    use rn::sync::layout::Endpoints;
    let now = rn::clock::now();
    let (a, b) = (common::node_key("a", 0), common::node_key("b", 0));
    let bytes = endpoints_answer(
        [
            (a, "10.0.0.1:51820".parse().unwrap(), now - 5),
            (b, "10.0.0.2:51820".parse().unwrap(), now - LIVE_SESSION - 1),
        ]
        .into_iter(),
    );
    let e: Endpoints = rn::ledger::canonical::decode(&bytes).unwrap();
    assert_eq!(e.peers.len(), 1);
    assert_eq!(
        (e.peers[0].pubkey, e.peers[0].endpoint.to_string()),
        (a, "10.0.0.1:51820".into())
    );
}

/// n3 may serve as an exit; the policy grants n1 tcp/80 to the internet through it.
const EXIT_POLICY: &str = r#"{"kind":"rn.policy.v1","rules":[{"src":["tag:a"],"dst":["tag:b"],"proto":"icmp"},{"src":["tag:a"],"dst":["internet"],"via":"exit","proto":"tcp","ports":["80"]}]}"#;

fn set_exit(id: &str, exit: bool) -> Op {
    Op::SetNode {
        id: id.parse().unwrap(),
        tags: None,
        addresses: None,
        routes: None,
        exit: Some(exit),
    }
}

/// The world above where n3 is an exit the policy grants n1.
fn exit_world() -> World {
    let mut w = World::new();
    w.commit(vec![set_exit("n3", true)]);
    w.set_policy(EXIT_POLICY);
    w
}

/// The exit's policy routing of the last route intent applied.
fn exit_route(t: &Arc<Mutex<FakeState>>) -> Option<rn::tunnel::ExitRoute> {
    t.lock().unwrap().routes.last().and_then(|r| r.exit.clone())
}

#[test]
fn a_chosen_exit_that_becomes_unusable_blocks_internet_traffic_and_says_why() {
    let blocked = |why: &str| {
        format!("{why}: internet traffic blocked; rn node exit off to use the local network")
    };
    // Each way an exit stops being usable, from a world where n1 uses exit n3.
    let cases: [(&str, Vec<Op>, Option<&str>); 5] = [
        (
            "exit n3 revoked at epoch 5",
            vec![Op::RevokeNode {
                id: "n3".parse().unwrap(),
            }],
            None,
        ),
        (
            "exit n3 quarantined at epoch 5",
            vec![Op::QuarantineNode {
                id: "n3".parse().unwrap(),
            }],
            None,
        ),
        (
            "exit n3 is not in the ledger at epoch 5",
            vec![Op::RemoveNode {
                id: "n3".parse().unwrap(),
            }],
            None,
        ),
        (
            "exit n3 is not an exit node at epoch 5 (exit: false)",
            vec![set_exit("n3", false)],
            None,
        ),
        (
            "no policy rule grants this node exit n3 at epoch 5",
            Vec::new(),
            Some(POLICY),
        ),
    ];
    for (why, ops, policy) in cases {
        let mut w = exit_world();
        let mut config = w.config();
        config.exit = Some("n3".parse().unwrap());
        let (mut agent, t, _) = w.agent_with(config);
        agent.reconcile();
        let s = status(&agent);
        assert_eq!(s.exit.as_deref(), Some("n3 (granted by rule 1)"), "{why}");
        assert_eq!(s.exit_blocked, None);
        let used = exit_route(&t).expect("the exit's policy routing");
        assert!(
            used.through && !used.allow_lan && used.mark == 51820,
            "{used:?}"
        );
        assert!(
            used.mesh.iter().any(|p| p.to_string() == "100.96.0.0/16"),
            "the overlay stays out of the exit's table: {used:?}"
        );
        let before = t.lock().unwrap().routes.len();

        match policy {
            Some(p) => w.set_policy(p),
            None => w.commit(ops),
        }
        agent.reconcile();
        let s = status(&agent);
        assert_eq!(
            (s.mode, s.exit.as_deref()),
            (NodeMode::Trusted, None),
            "{why}"
        );
        assert_eq!(s.exit_blocked.as_deref(), Some(blocked(why).as_str()));
        let held = exit_route(&t).expect("the policy routing stays");
        assert!(
            !held.through,
            "{why}: the blackhole takes the exit's place: {held:?}"
        );
        // Not one route intent on the way dropped the policy routing (that would let
        // internet traffic fall back to the host's own default route).
        let applied = t.lock().unwrap().routes[before..].to_vec();
        assert!(!applied.is_empty(), "{why}");
        assert!(
            applied.iter().all(|r| r.exit.is_some()),
            "{why}: {applied:?}"
        );
    }
}

#[test]
fn a_restricted_node_keeps_its_chosen_exit_closed_and_drifted_exit_routing_is_restored() {
    let w = exit_world();
    let mut config = w.config();
    config.exit = Some("n3".parse().unwrap());
    config.exit_allow_lan = true;
    let (mut agent, t, f) = w.agent_with(config);
    agent.reconcile();
    assert!(exit_route(&t).is_some_and(|e| e.through && e.allow_lan));

    // The policy routing deleted by hand is drift: installed again at the next check.
    t.lock().unwrap().routes_deleted = true;
    let applied = t.lock().unwrap().routes.len();
    agent.undo_drift();
    let s = status(&agent);
    assert_eq!((s.mode, s.drift_corrections), (NodeMode::Trusted, 1));
    assert_eq!(
        t.lock().unwrap().routes.len(),
        applied + 1,
        "installed again"
    );
    assert!(!t.lock().unwrap().routes_deleted);

    // The node's own log tampered: restricted, drop-all, and its exit closed, not lifted.
    let log = w.dir.join("ledger.log");
    let mut b = std::fs::read(&log).unwrap();
    let i = b.len() / 2;
    b[i] ^= 1;
    std::fs::write(&log, b).unwrap();
    agent.reconcile();
    let s = status(&agent);
    assert_eq!(s.mode, NodeMode::Restricted);
    assert_eq!(*f.lock().unwrap(), Filter::DropAll);
    let held = exit_route(&t).expect("the policy routing stays when restricted");
    assert!(
        !held.through && held.allow_lan && held.mark == 51820,
        "{held:?}"
    );
    assert_eq!(
        s.exit_blocked.as_deref(),
        Some(
            "this node is restricted, so exit n3 is not used: internet traffic blocked; \
             rn node exit off to use the local network"
        )
    );
    assert!(
        t.lock().unwrap().routes.iter().all(|r| r.exit.is_some()),
        "never lifted on the way"
    );
}

#[test]
fn without_a_chosen_exit_there_is_no_exit_routing() {
    let w = exit_world();
    let (mut agent, t, _) = w.agent();
    agent.reconcile();
    let s = status(&agent);
    assert_eq!((s.exit.as_deref(), s.exit_blocked.as_deref()), (None, None));
    assert!(t.lock().unwrap().routes.iter().all(|r| r.exit.is_none()));
}
