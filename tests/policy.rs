//! The policy engine: a decision matrix over contexts, protocols, ports and membership, plus
//! property tests of compilation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{T0, u};
use proptest::prelude::*;
use rn::ledger::model::{Node, NodeStatus, Role, Set, State};
use rn::ledger::types::{Cidr, Id, Sha256Digest};
use rn::policy::compile::ForwardTo;
use rn::policy::{Decision, Policy, PolicyView, Proto, Query, Target, compile, evaluate};

fn id(s: &str) -> Id {
    s.parse().unwrap()
}

fn mk(name: &str, host: u32, tags: &[&str], owner: &str) -> Node {
    let mut n = common::node(name, host, tags, T0);
    n.owner = owner.parse().unwrap();
    n
}

/// laptops, web and db servers, an ops box, a subnet router for 10.20.0.0/16, two exits
/// (one with the ledger capability, one without), and nodes in every status.
fn state(edit: impl Fn(&mut Vec<Node>)) -> State {
    let mut nodes = vec![
        mk("laptop-1", 1, &["tag:laptop"], "alice"),
        {
            let mut n = mk("laptop-2", 2, &["tag:laptop"], "alice");
            n.status = NodeStatus::Revoked;
            n
        },
        {
            let mut n = mk("laptop-3", 3, &["tag:laptop"], "carol");
            n.status = NodeStatus::Quarantined;
            n
        },
        mk("web-1", 4, &["tag:web"], "ops"),
        mk("web-2", 5, &["tag:web"], "ops"),
        mk("db-1", 6, &["tag:db"], "ops"),
        mk("ops-1", 7, &["tag:ops"], "bob"),
        {
            let mut n = mk("router-1", 8, &["tag:router"], "ops");
            n.routes = Set::new(vec!["10.20.0.0/16".parse().unwrap()]).unwrap();
            n
        },
        {
            let mut n = mk("exit-1", 9, &["tag:exit"], "ops");
            n.exit = true;
            n
        },
        mk("exit-2", 10, &["tag:exit"], "ops"),
    ];
    edit(&mut nodes);
    State::new(
        "acme".parse().unwrap(),
        u(1),
        common::params(),
        u(1),
        vec![common::approver("alice", Role::Owner)],
        nodes,
        None,
    )
    .unwrap()
}

const POLICY: &str = r#"{"kind":"rn.policy.v1","rules":[
  {"src":["tag:laptop"],"dst":["tag:web"],"proto":"tcp","ports":["443","8000-8099"]},
  {"src":["owner:alice"],"dst":["*"],"proto":"icmp"},
  {"src":["tag:laptop"],"dst":["internet"],"via":"exit","proto":"tcp","ports":["80","443"]},
  {"src":["tag:ops"],"dst":["10.20.0.0/16"],"via":"router","proto":"tcp","ports":["22"]},
  {"src":["*"],"dst":["*"],"proto":"udp","ports":["53"]},
  {"src":["tag:web"],"dst":["tag:db"],"proto":"tcp","ports":["5432"]},
  {"src":["tag:ops"],"dst":["10.0.0.0/8"],"via":"router","proto":"icmp"}]}"#;

fn policy() -> Policy {
    Policy::parse(POLICY.as_bytes()).unwrap().0
}

fn target(to: &str) -> Target {
    if to == "internet" {
        Target::Internet
    } else if to.contains('/') {
        Target::Prefix(to.parse().unwrap())
    } else {
        Target::Node(id(to))
    }
}

fn decide(
    st: &State,
    view: PolicyView<'_>,
    from: &str,
    to: &str,
    proto: Proto,
    port: Option<u16>,
) -> String {
    let q = Query {
        from: id(from),
        to: target(to),
        proto,
        port,
    };
    match evaluate(view, st, &q) {
        Decision::Allow { rule } => format!("allow {rule}"),
        Decision::Deny(r) => format!("deny {}", r.name()),
    }
}

use Proto::{Any, Icmp, Tcp, Udp};

/// (state variant, from, to, proto, port, expected)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Proto,
    Option<u16>,
    &'static str,
);

const MATRIX: &[Case] = &[
    // mesh
    ("base", "laptop-1", "web-1", Tcp, Some(443), "allow 0"),
    ("base", "laptop-1", "web-1", Tcp, Some(8050), "allow 0"),
    ("base", "laptop-1", "web-2", Tcp, Some(443), "allow 0"),
    ("base", "laptop-1", "web-1", Tcp, Some(22), "deny no_rule"),
    ("base", "laptop-1", "web-1", Tcp, None, "deny no_rule"),
    ("base", "laptop-1", "web-1", Udp, Some(443), "deny no_rule"),
    ("base", "laptop-1", "web-1", Udp, Some(53), "allow 4"),
    ("base", "laptop-1", "web-1", Icmp, None, "allow 1"),
    ("base", "laptop-1", "web-1", Any, None, "deny no_rule"),
    ("base", "laptop-1", "router-1", Icmp, None, "allow 1"),
    ("base", "laptop-1", "db-1", Tcp, Some(5432), "deny no_rule"),
    ("base", "web-1", "db-1", Tcp, Some(5432), "allow 5"),
    ("base", "web-1", "db-1", Tcp, Some(5433), "deny no_rule"),
    ("base", "db-1", "web-1", Tcp, Some(5432), "deny no_rule"),
    ("base", "web-1", "laptop-1", Udp, Some(53), "allow 4"),
    ("base", "web-1", "web-1", Udp, Some(53), "deny bad_query"),
    // membership beats `*`
    (
        "base",
        "laptop-2",
        "web-1",
        Tcp,
        Some(443),
        "deny node_revoked",
    ),
    (
        "base",
        "laptop-3",
        "web-1",
        Tcp,
        Some(443),
        "deny node_quarantined",
    ),
    (
        "base",
        "web-1",
        "laptop-2",
        Udp,
        Some(53),
        "deny node_revoked",
    ),
    (
        "base",
        "web-1",
        "laptop-3",
        Udp,
        Some(53),
        "deny node_quarantined",
    ),
    ("base", "ghost", "web-1", Udp, Some(53), "deny unknown_node"),
    ("base", "web-1", "ghost", Udp, Some(53), "deny unknown_node"),
    (
        "removed",
        "laptop-1",
        "web-2",
        Tcp,
        Some(443),
        "deny unknown_node",
    ),
    (
        "revoked-laptop",
        "laptop-1",
        "web-1",
        Udp,
        Some(53),
        "deny node_revoked",
    ),
    // router context
    ("base", "ops-1", "10.20.1.5/32", Tcp, Some(22), "allow 3"),
    ("base", "ops-1", "10.20.0.0/24", Tcp, Some(22), "allow 3"),
    (
        "base",
        "ops-1",
        "10.20.1.5/32",
        Tcp,
        Some(80),
        "deny no_rule",
    ),
    (
        "base",
        "ops-1",
        "10.20.1.5/32",
        Udp,
        Some(22),
        "deny no_rule",
    ),
    ("base", "ops-1", "10.20.1.5/32", Any, None, "deny no_rule"),
    ("base", "ops-1", "10.20.3.3/32", Icmp, None, "allow 6"),
    (
        "base",
        "ops-1",
        "10.21.0.1/32",
        Icmp,
        None,
        "deny capability_missing",
    ),
    (
        "base",
        "ops-1",
        "10.30.0.1/32",
        Tcp,
        Some(22),
        "deny no_rule",
    ),
    (
        "base",
        "laptop-1",
        "10.20.1.5/32",
        Tcp,
        Some(22),
        "deny no_rule",
    ),
    (
        "base",
        "laptop-1",
        "10.20.1.5/32",
        Tcp,
        Some(443),
        "deny no_rule",
    ),
    ("base", "ops-1", "router-1", Tcp, Some(22), "deny no_rule"),
    (
        "revoked-router",
        "ops-1",
        "10.20.1.5/32",
        Tcp,
        Some(22),
        "deny capability_missing",
    ),
    // exit context
    ("base", "laptop-1", "internet", Tcp, Some(443), "allow 2"),
    ("base", "laptop-1", "internet", Tcp, Some(80), "allow 2"),
    (
        "base",
        "laptop-1",
        "internet",
        Udp,
        Some(443),
        "deny no_rule",
    ),
    (
        "base",
        "laptop-1",
        "internet",
        Udp,
        Some(53),
        "deny no_rule",
    ),
    (
        "base",
        "laptop-1",
        "internet",
        Tcp,
        Some(22),
        "deny no_rule",
    ),
    ("base", "ops-1", "internet", Tcp, Some(443), "deny no_rule"),
    ("base", "web-1", "internet", Tcp, Some(443), "deny no_rule"),
    (
        "base",
        "laptop-2",
        "internet",
        Tcp,
        Some(443),
        "deny node_revoked",
    ),
    (
        "exit-lost",
        "laptop-1",
        "internet",
        Tcp,
        Some(443),
        "deny capability_missing",
    ),
    (
        "revoked-exit",
        "laptop-1",
        "internet",
        Tcp,
        Some(443),
        "deny capability_missing",
    ),
];

fn variant(name: &str) -> State {
    let set_status = |who: &'static str, s: NodeStatus| {
        move |nodes: &mut Vec<Node>| {
            nodes
                .iter_mut()
                .filter(|n| n.id.as_str() == who)
                .for_each(|n| n.status = s);
        }
    };
    match name {
        "base" => state(|_| {}),
        "removed" => state(|n| n.retain(|x| x.id.as_str() != "web-2")),
        "revoked-laptop" => state(set_status("laptop-1", NodeStatus::Revoked)),
        "revoked-router" => state(set_status("router-1", NodeStatus::Revoked)),
        "revoked-exit" => state(set_status("exit-1", NodeStatus::Revoked)),
        "exit-lost" => state(|n| {
            n.iter_mut()
                .filter(|x| x.id.as_str() == "exit-1")
                .for_each(|x| x.exit = false)
        }),
        other => panic!("unknown variant {other}"),
    }
}

#[test]
fn the_decision_matrix() {
    let p = policy();
    assert!(MATRIX.len() >= 40, "{} cases", MATRIX.len());
    let mut failures = Vec::new();
    for (v, from, to, proto, port, want) in MATRIX {
        let got = decide(&variant(v), PolicyView::Held(&p), from, to, *proto, *port);
        if got != *want {
            failures.push(format!(
                "[{v}] {from} -> {to} {proto} {port:?}: got {got}, want {want}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_policy_or_a_policy_not_held_denies_everything() {
    let st = state(|_| {});
    assert_eq!(
        decide(&st, PolicyView::None, "laptop-1", "web-1", Tcp, Some(443)),
        "deny no_policy"
    );
    let h = Sha256Digest::of(b"x");
    assert_eq!(
        decide(
            &st,
            PolicyView::Missing(&h),
            "laptop-1",
            "web-1",
            Tcp,
            Some(443)
        ),
        "deny policy_not_held"
    );
    assert!(
        compile(PolicyView::Missing(&h), &st, &id("laptop-1"), None)
            .peers
            .is_empty()
    );
}

#[test]
fn removing_a_rule_never_adds_access() {
    let full = policy();
    for drop in 0..full.rules.len() {
        let mut less = full.clone();
        less.rules.remove(drop);
        for (v, from, to, proto, port, _) in MATRIX {
            let st = variant(v);
            let after = decide(&st, PolicyView::Held(&less), from, to, *proto, *port);
            let before = decide(&st, PolicyView::Held(&full), from, to, *proto, *port);
            assert!(
                !after.starts_with("allow") || before.starts_with("allow"),
                "dropping rule {drop} allowed {from} -> {to}"
            );
        }
    }
}

#[test]
fn compilation_for_a_client_a_router_and_an_exit() {
    let st = state(|_| {});
    let p = policy();
    let view = PolicyView::Held(&p);
    let ops = compile(view, &st, &id("ops-1"), None);
    let router = ops
        .peers
        .iter()
        .find(|x| x.id.as_str() == "router-1")
        .unwrap();
    let allowed: Vec<String> = router.allowed.iter().map(|c| c.to_string()).collect();
    assert_eq!(allowed, ["10.20.0.0/16", "100.96.0.8/32"]);
    assert!(ops.exit.is_none());

    let r = compile(view, &st, &id("router-1"), None);
    let fwd: Vec<_> = r
        .forward
        .iter()
        .map(|f| (f.rule, f.proto, f.to.clone()))
        .collect();
    let prefixes = |s: &str| ForwardTo::Prefixes(vec![s.parse::<Cidr>().unwrap()]);
    assert_eq!(
        fwd,
        [
            (3, Tcp, prefixes("10.20.0.0/16")),
            (6, Icmp, prefixes("10.20.0.0/16"))
        ]
    );

    let laptop = compile(view, &st, &id("laptop-1"), Some(&id("exit-1")));
    assert_eq!(
        laptop.exit.as_ref().map(|e| (e.node.as_str(), e.rule)),
        Some(("exit-1", 2))
    );
    let exit = laptop
        .peers
        .iter()
        .find(|x| x.id.as_str() == "exit-1")
        .unwrap();
    assert!(exit.allowed.iter().any(|c| c.to_string() == "0.0.0.0/0"));
    // Choosing a node without the capability gives no default route.
    let wrong = compile(view, &st, &id("laptop-1"), Some(&id("exit-2")));
    assert!(wrong.exit.is_none() && !wrong.notes.is_empty());
    assert!(
        wrong
            .peers
            .iter()
            .all(|x| x.allowed.iter().all(|c| c.to_string() != "0.0.0.0/0"))
    );
    let e = compile(view, &st, &id("exit-1"), None);
    assert!(
        e.forward
            .iter()
            .any(|f| f.to == ForwardTo::Internet && f.proto == Tcp)
    );
    // A revoked node compiles to nothing, and nobody compiles it in.
    let revoked = variant("revoked-laptop");
    assert!(
        compile(view, &revoked, &id("laptop-1"), None)
            .peers
            .is_empty()
    );
    for n in revoked.nodes() {
        let i = compile(view, &revoked, &n.id, None);
        assert!(i.peers.iter().all(|x| x.id.as_str() != "laptop-1"));
    }
}

// --- properties ---

fn arb_state() -> impl Strategy<Value = State> {
    proptest::collection::vec(
        (0u8..3, 0u8..3, 0u8..4, any::<bool>(), any::<bool>()),
        2..12,
    )
    .prop_map(|spec| {
        let tags = ["tag:a", "tag:b", "tag:c"];
        let owners = ["o1", "o2", "o3"];
        let nodes = spec
            .iter()
            .enumerate()
            .map(|(i, (t, o, status, route, exit))| {
                let mut n = mk(
                    &format!("n{i}"),
                    i as u32 + 1,
                    &[tags[*t as usize]],
                    owners[*o as usize],
                );
                n.status = match status {
                    0 => NodeStatus::Revoked,
                    1 => NodeStatus::Quarantined,
                    _ => NodeStatus::Active,
                };
                if *route {
                    n.routes = Set::new(vec![format!("10.{i}.0.0/16").parse().unwrap()]).unwrap();
                }
                n.exit = *exit;
                n
            })
            .collect();
        State::new(
            "acme".parse().unwrap(),
            u(1),
            common::params(),
            u(1),
            vec![common::approver("alice", Role::Owner)],
            nodes,
            None,
        )
        .unwrap()
    })
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    let sel = prop_oneof![
        Just("*".to_owned()),
        (0u8..12).prop_map(|i| format!("node:n{i}")),
        (0u8..3).prop_map(|i| format!("tag:{}", ["a", "b", "c"][i as usize])),
        (1u8..4).prop_map(|i| format!("owner:o{i}")),
    ];
    let rule = (proptest::collection::vec(sel.clone(), 1..3), proptest::collection::vec(sel, 1..3), 0u8..4, 0u8..3, 0u8..12).prop_map(|(src, dst, proto, ctx, net)| {
        let proto = ["tcp", "udp", "icmp", "any"][proto as usize];
        let ports = if proto == "tcp" || proto == "udp" { r#","ports":["22","8000-8100"]"# } else { "" };
        let src = serde_json::to_string(&src).unwrap();
        match ctx {
            0 => format!(r#"{{"src":{src},"dst":{},"proto":"{proto}"{ports}}}"#, serde_json::to_string(&dst).unwrap()),
            1 => format!(r#"{{"src":{src},"dst":["10.{net}.0.0/16"],"via":"router","proto":"{proto}"{ports}}}"#),
            _ => format!(r#"{{"src":{src},"dst":["internet"],"via":"exit","proto":"{proto}"{ports}}}"#),
        }
    });
    proptest::collection::vec(rule, 0..6).prop_map(|rules| {
        Policy::parse(
            format!(r#"{{"kind":"rn.policy.v1","rules":[{}]}}"#, rules.join(",")).as_bytes(),
        )
        .unwrap()
        .0
    })
}

fn queries(p: &Policy) -> Vec<(Proto, Option<u16>)> {
    p.rules
        .iter()
        .map(|r| (r.proto, r.ports.as_ref().map(|v| v[0].lo)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every peer and every inbound rule a node compiles is backed by an allowing decision.
    #[test]
    fn compiled_intents_are_within_what_evaluate_allows(st in arb_state(), p in arb_policy()) {
        let view = PolicyView::Held(&p);
        for n in st.nodes() {
            let intents = compile(view, &st, &n.id, None);
            for rule in &intents.inbound {
                for addr in &rule.from {
                    let src = st.node_with_address(addr).unwrap();
                    let port = (!rule.ports.is_empty()).then(|| rule.ports[0].lo);
                    let q = Query { from: src.clone(), to: Target::Node(n.id.clone()), proto: rule.proto, port };
                    prop_assert!(matches!(evaluate(view, &st, &q), Decision::Allow { .. }), "{src} -> {} {:?}", n.id, rule);
                }
            }
            for peer in &intents.peers {
                let p_node = st.node(&peer.id).unwrap();
                let mut ok = false;
                for (proto, port) in queries(&p) {
                    let mut targets = vec![(n.id.clone(), Target::Node(peer.id.clone())), (peer.id.clone(), Target::Node(n.id.clone()))];
                    for r in p_node.routes.iter() { targets.push((n.id.clone(), Target::Prefix(*r))); }
                    for r in n.routes.iter() { targets.push((peer.id.clone(), Target::Prefix(*r))); }
                    if p_node.exit { targets.push((n.id.clone(), Target::Internet)); }
                    if n.exit { targets.push((peer.id.clone(), Target::Internet)); }
                    for (from, to) in targets {
                        let q = Query { from, to, proto, port };
                        ok |= matches!(evaluate(view, &st, &q), Decision::Allow { .. });
                    }
                }
                prop_assert!(ok, "{} has peer {} that no decision allows", n.id, peer.id);
                prop_assert_eq!(p_node.status, NodeStatus::Active);
            }
        }
    }

    /// Revoking a node removes it from every other node's peers, inbound and forward rules.
    #[test]
    fn revoking_a_node_removes_it_everywhere(st in arb_state(), p in arb_policy(), pick in any::<proptest::sample::Index>()) {
        let victim = st.nodes().nth(pick.index(st.nodes().len())).unwrap().clone();
        let nodes: Vec<Node> = st.nodes().map(|n| { let mut n = n.clone(); if n.id == victim.id { n.status = NodeStatus::Revoked; } n }).collect();
        let after = State::new("acme".parse().unwrap(), u(1), common::params(), u(1), vec![common::approver("alice", Role::Owner)], nodes, None).unwrap();
        for n in after.nodes() {
            let i = compile(PolicyView::Held(&p), &after, &n.id, None);
            prop_assert!(i.peers.iter().all(|x| x.id != victim.id));
            let addrs: Vec<&Cidr> = victim.addresses.iter().collect();
            prop_assert!(i.inbound.iter().all(|r| r.from.iter().all(|a| !addrs.contains(&a))));
            prop_assert!(i.forward.iter().all(|r| r.from.iter().all(|a| !addrs.contains(&a))));
        }
    }

    /// Compilation is deterministic, also across a state rebuilt from its bytes.
    #[test]
    fn compile_is_deterministic(st in arb_state(), p in arb_policy()) {
        let again: State = serde_json::from_slice(&rn::ledger::canonical::to_jcs(&st)).unwrap();
        for n in st.nodes() {
            let a = compile(PolicyView::Held(&p), &st, &n.id, None);
            let b = compile(PolicyView::Held(&p), &again, &n.id, None);
            prop_assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        }
    }
}

/// The ledger carries policy documents unread; the policy layer reads every one before the
/// store keeps it, and one that is not a valid policy makes the whole file malformed.
#[test]
fn carried_policy_documents_are_read_by_the_policy_layer() {
    let bundle = |doc: &str| {
        format!(r#"{{"kind":"rn.bundle.v1","policies":[{doc}],"updates":[]}}"#).into_bytes()
    };
    let good = bundle(POLICY.trim());
    let carried = rn::policy::read_carried(&good).unwrap();
    assert_eq!(carried.documents.len(), 1);
    assert_eq!(carried.documents[0].hash(), policy().hash());
    assert_eq!(
        Policy::from_pinned(&carried.documents[0]).unwrap(),
        policy()
    );

    let bad = bundle(r#"{"kind":"rn.policy.v1","rules":[{"src":["*"]}]}"#);
    // The format layer takes it (an object of the pinned kind) ...
    assert!(rn::ledger::carried::Carried::decode(&bad).is_ok());
    // ... and the policy layer refuses the file.
    let err = rn::policy::read_carried(&bad).unwrap_err();
    assert_eq!(err.name(), "Malformed", "{err}");
    assert!(err.to_string().contains("policies[0]"), "{err}");

    let other_kind = bundle(r#"{"kind":"rn.bundle.v1","rules":[]}"#);
    assert_eq!(
        rn::ledger::carried::Carried::decode(&other_kind)
            .unwrap_err()
            .name(),
        "UnknownKind"
    );
}
