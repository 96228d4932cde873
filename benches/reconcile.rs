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
use rn::tunnel::{Diff, InterfaceIntent, PeerConfig, TunnelBackend, WgBackend, WgKind, sync};

const PEERS: u32 = 1_000;
const ROUNDS: usize = 9;

/// Peers numbered `range` (addresses and endpoints distinct per number), sorted by key.
fn make_peers(range: std::ops::Range<u32>) -> Vec<PeerConfig> {
    let mut peers: Vec<PeerConfig> = range
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
    let peers = make_peers(0..PEERS);
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
        mtu: 1420,
    };
    let (empty_a, full_a) = (
        intent(a, &key_a, 51_900, &[]),
        intent(a, &key_a, 51_900, &peers),
    );
    // Both interfaces: the same embedded device, created through rn's backend, empty.
    let mut rn_if = WgBackend::new(WgKind::Userspace, a).unwrap();
    sync(&mut rn_if, &empty_a).unwrap();
    let mut wg_if = WgBackend::new(WgKind::Userspace, b).unwrap();
    sync(&mut wg_if, &intent(b, &key_b, 51_901, &[])).unwrap();
    let empty_conf = dir.path().join("empty.conf");
    let full_conf = dir.path().join("full.conf");
    std::fs::write(&empty_conf, wg_conf(&key_b, 51_901, &[])).unwrap();
    std::fs::write(&full_conf, wg_conf(&key_b, 51_901, &peers)).unwrap();

    let (mut rn_t, mut wg_t) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        sync(&mut rn_if, &empty_a).unwrap();
        let t = Instant::now();
        sync(&mut rn_if, &full_a).unwrap();
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

    // One peer added into the full interface: rn reads the interface back, diffs and sends
    // that one peer (what a reconcile does); `wg set` sends it blind.
    let extra = make_peers(PEERS..PEERS + 1);
    let mut plus = peers.clone();
    plus.extend(extra.iter().cloned());
    let plus_a = intent(a, &key_a, 51_900, &plus);
    let e = &extra[0];
    let allowed = e.allowed[0].to_string();
    let endpoint = e.endpoint.unwrap().to_string();
    let key = e.pubkey.to_string();
    let (mut full_t, mut apply_t, mut read_t, mut wg_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS * 3 {
        // What a reconcile does: read back, diff, apply.
        let t = Instant::now();
        let diff = sync(&mut rn_if, &plus_a).unwrap();
        full_t.push(t.elapsed());
        assert_eq!(
            (diff.added.len(), diff.changed.len(), diff.removed.len()),
            (1, 0, 0)
        );
        sync(&mut rn_if, &full_a).unwrap();
        // The change alone: the diff from a read-back made beforehand (untimed), applied.
        let t = Instant::now();
        let observed = rn_if.observe().unwrap();
        read_t.push(t.elapsed());
        let diff = Diff::between(&observed, &plus_a);
        let t = Instant::now();
        rn_if.apply(&plus_a, &diff).unwrap();
        apply_t.push(t.elapsed());
        sync(&mut rn_if, &full_a).unwrap();

        let t = Instant::now();
        wg(&[
            "set",
            b,
            "peer",
            &key,
            "allowed-ips",
            &allowed,
            "endpoint",
            &endpoint,
            "persistent-keepalive",
            "25",
        ]);
        wg_t.push(t.elapsed());
        wg(&["set", b, "peer", &key, "remove"]);
    }
    let ms = |v: Vec<Duration>| median(v).as_secs_f64() * 1e3;
    let (full_m, apply_m, read_m, wg_m) = (ms(full_t), ms(apply_t), ms(read_t), ms(wg_t));
    println!(
        "one peer added into {PEERS} peers: rn applies the one-peer diff in {apply_m:.2} ms, wg set {wg_m:.2} ms, ratio {:.3}; target <= 1.5",
        apply_m / wg_m
    );
    println!(
        "  with the read-back of {PEERS} peers before it ({read_m:.2} ms): {full_m:.2} ms, ratio {:.3}",
        full_m / wg_m
    );
    report::row(
        "one peer added into a 1,000-peer userspace interface: rn applies the one-peer diff (vs wg set)",
        "ms",
        apply_m,
        Some(wg_m),
        1.5,
    );
    report::row(
        "one peer added into a 1,000-peer userspace interface: rn read-back + diff + apply (vs wg set)",
        "ms",
        full_m,
        Some(wg_m),
        1.5,
    );
    rn_if.shutdown().unwrap();
    wg_if.shutdown().unwrap();
}

fn wg(args: &[&str]) {
    let out = Command::new("wg").args(args).output().expect("wg runs");
    assert!(
        out.status.success(),
        "wg {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
