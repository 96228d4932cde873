//! Reconciling 1,000 peers into a userspace WireGuard interface: rn's backend (`apply`, one
//! UAPI transaction) against `wg setconf` with the same peers into an identical interface (the
//! same embedded userspace device, created the same way). Needs root, `wg` and a network
//! namespace of its own: `bench/run.sh` runs it inside one and says so in `RN_BENCH_NETNS`.
//! Each round first empties the interface (not timed), then fills it with the 1,000 peers
//! (timed); the median of the rounds is reported. `wg setconf` is timed as an operator runs it,
//! process start and parsing of its file included (about a millisecond of the total).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod report;

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use rn::keys::NodeSecret;
use rn::tunnel::{InterfaceIntent, PeerConfig, TunnelBackend, WgBackend, WgKind};

const PEERS: u32 = 1_000;
const ROUNDS: usize = 9;

fn peers() -> Vec<PeerConfig> {
    let mut peers: Vec<PeerConfig> = (0..PEERS)
        .map(|i| {
            let host = (100u32 << 24 | 64 << 16) + 2 + i;
            PeerConfig {
                pubkey: NodeSecret::generate().unwrap().public(),
                allowed: vec![
                    format!("{}/32", std::net::Ipv4Addr::from(host))
                        .parse()
                        .unwrap(),
                ],
                // 198.18.0.0/15: the benchmarking range (RFC 2544), reachable from nowhere.
                endpoint: Some(
                    format!(
                        "198.{}.{}.{}:51820",
                        18 + (i >> 16 & 1),
                        i >> 8 & 255,
                        i & 255
                    )
                    .parse()
                    .unwrap(),
                ),
                keepalive: Some(25),
            }
        })
        .collect();
    peers.sort_by_key(|p| p.pubkey);
    peers
}

/// `wg setconf` input for `key`, `port` and `peers`, as an operator would write it.
fn wg_conf(key: &NodeSecret, port: u16, peers: &[PeerConfig]) -> String {
    let mut s = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = {port}\n",
        key.to_base64().as_str()
    );
    for p in peers {
        let allowed: Vec<String> = p.allowed.iter().map(ToString::to_string).collect();
        write!(
            s,
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\nEndpoint = {}\nPersistentKeepalive = {}\n",
            p.pubkey,
            allowed.join(", "),
            p.endpoint.unwrap(),
            p.keepalive.unwrap()
        )
        .unwrap();
    }
    s
}

fn setconf(ifname: &str, path: &std::path::Path) {
    let out = Command::new("wg")
        .arg("setconf")
        .arg(ifname)
        .arg(path)
        .output()
        .expect("wg runs");
    assert!(
        out.status.success(),
        "wg setconf {ifname}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if rustix::process::geteuid().as_raw() != 0 || std::env::var_os("RN_BENCH_NETNS").is_none() {
        println!(
            "reconcile bench: not run (needs root, wg and a network namespace of its own; bench/run.sh provides them)"
        );
        return;
    }
    let peers = peers();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = ("rnbench0", "rnbench1");
    let (key_a, key_b) = (
        NodeSecret::generate().unwrap(),
        NodeSecret::generate().unwrap(),
    );
    let intent = |name, key, port, peers: &[PeerConfig]| InterfaceIntent {
        name,
        key,
        listen_port: port,
        addresses: vec!["100.64.0.1/10".parse().unwrap()],
        peers: peers.to_vec(),
        fwmark: None,
    };
    let (empty_a, full_a) = (
        intent(a, &key_a, 51_900, &[]),
        intent(a, &key_a, 51_900, &peers),
    );
    // Both interfaces: the same embedded device, created through rn's backend, empty.
    let mut rn_if = WgBackend::new(WgKind::Userspace, a).unwrap();
    rn_if.apply(&empty_a).unwrap();
    let mut wg_if = WgBackend::new(WgKind::Userspace, b).unwrap();
    wg_if.apply(&intent(b, &key_b, 51_901, &[])).unwrap();
    let empty_conf = dir.path().join("empty.conf");
    let full_conf = dir.path().join("full.conf");
    std::fs::write(&empty_conf, wg_conf(&key_b, 51_901, &[])).unwrap();
    std::fs::write(&full_conf, wg_conf(&key_b, 51_901, &peers)).unwrap();

    let (mut rn_t, mut wg_t) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        rn_if.apply(&empty_a).unwrap();
        let t = Instant::now();
        rn_if.apply(&full_a).unwrap();
        rn_t.push(t.elapsed());

        setconf(b, &empty_conf);
        let t = Instant::now();
        setconf(b, &full_conf);
        wg_t.push(t.elapsed());
    }
    // Both interfaces hold the 1,000 peers afterwards.
    assert_eq!(rn_if.observe().unwrap().peers.len(), PEERS as usize);
    assert_eq!(wg_if.observe().unwrap().peers.len(), PEERS as usize);
    let (rn_m, wg_m) = (median(rn_t), median(wg_t));
    println!(
        "reconcile {PEERS} peers into a userspace interface: rn backend {:.1} ms, wg setconf {:.1} ms, ratio {:.3}; target <= 1.2",
        rn_m.as_secs_f64() * 1e3,
        wg_m.as_secs_f64() * 1e3,
        rn_m.as_secs_f64() / wg_m.as_secs_f64()
    );
    report::row(
        "reconcile 1,000 peers into a userspace interface: rn backend (vs wg setconf)",
        "ms",
        rn_m.as_secs_f64() * 1e3,
        Some(wg_m.as_secs_f64() * 1e3),
        1.2,
    );
    rn_if.shutdown().unwrap();
    wg_if.shutdown().unwrap();
}
