//! Policy compilation for one node of a 10,000-node network with 1,000 rules (target ≤ 50 ms).
//! Run with `make bench`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod report;

use std::time::Instant;

use common::{T0, approver, params, u};
use rn::ledger::model::{Role, Set, State};
use rn::policy::{Policy, PolicyView, compile};

fn main() {
    let mut p = params();
    p.overlay_v4 = Some("100.64.0.0/10".parse().unwrap());
    // 10,000 nodes: 100 teams of 100, 50 services, 200 owners; one node in 50 routes a /24.
    let nodes = (0..10_000u32)
        .map(|i| {
            let mut n = common::fleet_node(i, T0);
            n.tags = Set::new(vec![
                format!("tag:team-{}", i % 100).parse().unwrap(),
                format!("tag:svc-{}", i % 50).parse().unwrap(),
            ])
            .unwrap();
            n.owner = format!("owner-{}", i % 200).parse().unwrap();
            if i % 50 == 0 {
                n.routes = Set::new(vec![
                    format!("10.{}.{}.0/24", i / 256 % 256, i % 256)
                        .parse()
                        .unwrap(),
                ])
                .unwrap();
            }
            n.exit = i % 1000 == 1;
            n
        })
        .collect();
    let state = State::new(
        "acme".parse().unwrap(),
        u(1),
        p,
        u(1),
        vec![approver("alice", Role::Owner)],
        nodes,
        None,
    )
    .unwrap();
    // 1,000 rules: team -> service on tcp ports, owner -> team icmp, router and exit grants.
    let rules: Vec<String> = (0..1000)
        .map(|i| match i % 4 {
            0 => format!(r#"{{"src":["tag:team-{}"],"dst":["tag:svc-{}"],"proto":"tcp","ports":["443","{}"]}}"#, i % 100, i % 50, 8000 + i),
            1 => format!(r#"{{"src":["owner:owner-{}"],"dst":["tag:team-{}"],"proto":"icmp"}}"#, i % 200, (i * 7) % 100),
            2 => format!(r#"{{"src":["tag:team-{}"],"dst":["10.0.0.0/8"],"via":"router","proto":"tcp","ports":["22"]}}"#, i % 100),
            _ => format!(r#"{{"src":["tag:team-{}"],"dst":["internet"],"via":"exit","proto":"tcp","ports":["80","443"]}}"#, i % 100),
        })
        .collect();
    let policy = Policy::parse(
        format!(r#"{{"kind":"rn.policy.v1","rules":[{}]}}"#, rules.join(",")).as_bytes(),
    )
    .unwrap()
    .0;
    let me = "node-04242".parse().unwrap();
    let exit = "node-00001".parse().unwrap();
    let mut best = f64::MAX;
    let mut intents = None;
    for _ in 0..10 {
        let t = Instant::now();
        let i = compile(PolicyView::Held(&policy), &state, &me, Some(&exit));
        best = best.min(t.elapsed().as_secs_f64());
        intents = Some(i);
    }
    let i = intents.unwrap();
    println!("policy compile, one node of 10,000 with 1,000 rules");
    println!(
        "  {:.2} ms ({} peers, {} inbound rules, {} forward rules, {} routes used); target <= 50 ms {}",
        best * 1e3,
        i.peers.len(),
        i.inbound.len(),
        i.forward.len(),
        i.routes_used.len(),
        if best * 1e3 <= 50.0 {
            "meets"
        } else {
            "MISSES"
        }
    );
    report::row(
        "policy compile, one node of 10,000, 1,000 rules",
        "ms",
        best * 1e3,
        None,
        50.0,
    );
}
