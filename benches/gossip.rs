//! The spread of one commit over a simulated mesh of 1,000 and 10,000 nodes, no sockets: every
//! node runs the agents' own spreading rule (`rn::sync::gossip::spread`: notify `fanout` random
//! peers at a time while some were behind) and their periodic pull (every `sync_interval`
//! ±20 % from `fanout` random peers). Time advances in hops of one notification, pull and
//! commit; the hop's length is an assumption (the 12-node e2e spread measures ~0.2 s a hop).
//! Every node may reach every other (a policy that lets all members talk).

mod report;

use std::collections::HashSet;

/// One hop: a notification, the pull it starts and the commit.
const HOP_SECS: f64 = 0.2;
const FANOUT: usize = 3;
const SYNC_INTERVAL: f64 = 30.0;
/// A run that has not reached every node by then stops (and says so).
const LIMIT_SECS: f64 = 600.0;

/// splitmix64: a small deterministic generator for the simulation (not for keys).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Distinct random nodes other than `me`, drawn as they are asked for.
    fn others(&mut self, n: usize, me: usize) -> impl Iterator<Item = usize> + '_ {
        let mut seen = HashSet::from([me]);
        std::iter::from_fn(move || {
            if seen.len() >= n {
                return None;
            }
            loop {
                let p = self.below(n);
                if seen.insert(p) {
                    return Some(p);
                }
            }
        })
    }
}

#[derive(Debug)]
struct Run {
    /// Hops until 99 % of the nodes had the commit.
    hops_99: usize,
    /// Seconds until 99 % of the nodes had it.
    secs_99: f64,
    /// Seconds until every node had it (`None`: not within the limit).
    secs: Option<f64>,
    /// Notifications sent, per node.
    notifications_per_node: f64,
    /// Nodes that got it from a periodic pull rather than a notification.
    by_periodic_pull: usize,
}

fn simulate(n: usize, seed: u64) -> Run {
    let mut rng = Rng(seed);
    let mut has = vec![false; n];
    let mut next_pull: Vec<f64> = (0..n).map(|_| rng.unit() * SYNC_INTERVAL).collect();
    has[0] = true;
    let (mut count, mut notifications, mut by_pull) = (1usize, 0usize, 0usize);
    let mut spreading = vec![0usize];
    let mut hops = 0;
    let mut t = 0.0;
    let mut secs_99 = f64::INFINITY;
    let mut hops_99 = usize::MAX;
    while count < n && t < LIMIT_SECS {
        let mut newly: Vec<usize> = Vec::new();
        let mut pending = vec![false; n];
        for &s in &spreading {
            let done = rn::sync::gossip::spread(rng.others(n, s), FANOUT, |group| {
                let mut behind = 0;
                for &g in group {
                    if !has[g] {
                        behind += 1;
                        if !pending[g] {
                            pending[g] = true;
                            newly.push(g);
                        }
                    }
                }
                behind
            });
            notifications += done.told;
        }
        for node in 0..n {
            if has[node] || pending[node] || next_pull[node] > t {
                continue;
            }
            next_pull[node] += SYNC_INTERVAL * (0.8 + 0.4 * rng.unit());
            let got = rng.others(n, node).take(FANOUT).any(|p| has[p]);
            if got {
                pending[node] = true;
                newly.push(node);
                by_pull += 1;
            }
        }
        for &g in &newly {
            has[g] = true;
        }
        count += newly.len();
        spreading = newly;
        hops += 1;
        t += HOP_SECS;
        if count * 100 >= n * 99 && secs_99.is_infinite() {
            secs_99 = t;
            hops_99 = hops;
        }
    }
    Run {
        hops_99,
        secs_99,
        secs: (count == n).then_some(t),
        notifications_per_node: notifications as f64 / n as f64,
        by_periodic_pull: by_pull,
    }
}

fn main() {
    for (n, runs) in [(1_000usize, 20u64), (10_000, 10)] {
        let results: Vec<Run> = (0..runs).map(|seed| simulate(n, 0x5eed + seed)).collect();
        let p95 = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[((v.len() * 95).div_ceil(100)).saturating_sub(1)]
        };
        let secs: Vec<f64> = results
            .iter()
            .map(|r| r.secs.unwrap_or(f64::INFINITY))
            .collect();
        let p95_99 = p95(results.iter().map(|r| r.secs_99).collect());
        let p95_100 = p95(secs.clone());
        let max_hops = results.iter().map(|r| r.hops_99).max().unwrap_or(0);
        let mean_notes = results
            .iter()
            .map(|r| r.notifications_per_node)
            .sum::<f64>()
            / runs as f64;
        let pulled: usize = results.iter().map(|r| r.by_periodic_pull).sum();
        println!(
            "{n} nodes, {runs} runs: time to 99 % p95 {p95_99:.1} s; to 100 % p95 {p95_100:.1} s; \
             99 % within {max_hops} hops at most; {mean_notes:.1} notifications per node; {pulled} node(s) in \
             all reached by a periodic pull"
        );
        report::row(
            &format!(
                "one commit's spread, simulated {n} nodes (fanout 3, {HOP_SECS} s a hop): time to 99 %, p95 of {runs} runs"
            ),
            "s",
            p95_99,
            None,
            5.0,
        );
        // The last nodes a rumour misses take their next periodic pull: within two intervals.
        report::row(
            &format!(
                "one commit's spread, simulated {n} nodes (sync_interval {SYNC_INTERVAL} s): time to 100 %, p95 of {runs} runs"
            ),
            "s",
            p95_100,
            None,
            2.0 * SYNC_INTERVAL,
        );
        report::row(
            &format!("one commit's spread, simulated {n} nodes: hops to 99 %, most of {runs} runs"),
            "hops",
            max_hops as f64,
            None,
            25.0,
        );
        report::row(
            &format!("one commit's spread, simulated {n} nodes: notifications sent per node"),
            "notifications",
            (mean_notes * 100.0).round() / 100.0,
            None,
            10.0,
        );
    }
}
